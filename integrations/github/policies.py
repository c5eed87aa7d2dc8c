"""Policies from the repository: what a pull request proposes, and what the default branch holds.

Gates always evaluate with the policies of the protected default branch; a PR that edits
``policies/`` cannot loosen its own gate. What a PR proposes is only read to check it:
validated, and compared with the policies in force. A push to the default branch that
changes them is what changes the policies in force (:func:`install`): the files at the
pushed commit are fetched, validated, and only if valid swapped in for the policy directory
phasegate runs with; an invalid set never replaces a valid one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from gates.loader import PolicyError, load_policies
from integrations.github.evidence import GithubSource

SOURCE_MARKER = ".phasegate-source.json"
"""Written into an installed policy directory: which push it came from. The loader skips
dotfiles, so it is not part of the policy set or its hash."""


class IncompleteTree(Exception):
    """GitHub listed only part of a commit's files: a policy set read from it may lack files."""


def fetch(source: GithubSource, repo: str, ref: str, folder: str, into: Path) -> list[str]:
    """Write the ``folder`` of ``repo`` at ``ref`` under ``into``; the files' repo paths.

    Raises :class:`IncompleteTree` when GitHub cut the listing short (``truncated``: more
    than 100,000 entries or 7 MB): the files it left out may be policies, and a subset can
    validate and yet mean something else than the whole -- a missing gate, project or
    waiver is not an error the loader can see."""
    tree = source.reader.get(repo, f"/repos/{repo}/git/trees/{ref}", {"recursive": "1"}) or {}
    if tree.get("truncated"):
        raise IncompleteTree(
            f"GitHub lists the files of {repo}@{ref[:12]} only in part (its tree is truncated: "
            f"more than 100,000 entries or 7 MB), so {folder.strip('/')}/ cannot be read whole"
        )
    prefix = folder.strip("/") + "/"
    written = []
    for entry in tree.get("tree", []):
        path = entry.get("path", "")
        if entry.get("type") != "blob" or not path.startswith(prefix):
            continue
        target = into / path[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.blob(repo, entry["sha"], path, ref) or "")
        written.append(path)
    return written


def in_repository(errors: list[PolicyError], directory: Path, folder: str) -> list[PolicyError]:
    """Errors of policies loaded from ``directory`` named by their path in the repository."""
    local = str(directory)
    return [
        replace(e, path=folder.strip("/") + e.path[len(local) :]) if e.path.startswith(local) else e
        for e in errors
    ]


@dataclass(frozen=True)
class Installed:
    """What became of a push's policies: ``installed`` or not, and the note to record."""

    installed: bool
    note: str


def install(
    source: GithubSource,
    repo: str,
    sha: str,
    folder: str,
    target: Path,
    pushed_at: datetime,
) -> Installed:
    """Make the policies of ``repo``'s ``folder`` at ``sha`` the ones in ``target``, if valid.

    They are written to a new directory beside ``target`` and validated there; a valid set
    then replaces ``target`` by renaming (a reader sees the old set or the new one, never a
    mix; in the instant between the two renames it sees no directory, and
    ``ActivePolicies`` keeps the set it has). ``pushed_at`` orders pushes: a late or retried
    delivery of an older push does not roll a newer set back.
    """
    target = Path(target)
    short = sha[:12]
    earlier = _source(target)
    if earlier and datetime.fromisoformat(earlier["pushed_at"]) > pushed_at:
        return Installed(
            False,
            f"policies of {repo}@{short} not installed: those of a later push "
            f"({earlier['sha'][:12]}) are in force",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".{target.name}.incoming-", dir=target.parent))
    try:
        try:
            files = fetch(source, repo, sha, folder, incoming)
        except IncompleteTree as exc:
            return Installed(
                False,
                f"policies of {repo}@{short} not installed; the policy set in force stays: {exc}",
            )
        loaded = load_policies(incoming)
        if loaded.policies is None:
            errors = in_repository(loaded.errors, incoming, folder)
            return Installed(
                False,
                f"policies of {repo}@{short} are invalid; the policy set in force stays "
                f"({len(errors)} problem(s)): " + "; ".join(map(str, errors)),
            )
        marker = {"repo": repo, "sha": sha, "pushed_at": pushed_at.isoformat()}
        (incoming / SOURCE_MARKER).write_text(json.dumps(marker))
        _swap(incoming, target)
        return Installed(
            True,
            f"policies of {repo}@{short} installed ({len(files)} file(s), "
            f"policy set {loaded.policies.policy_hash[:12]})",
        )
    finally:
        shutil.rmtree(incoming, ignore_errors=True)  # gone already once swapped in


def _source(directory: Path) -> dict[str, str] | None:
    try:
        found = json.loads((directory / SOURCE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "pushed_at" in found else None


def _swap(incoming: Path, target: Path) -> None:
    """Put ``incoming`` where ``target`` is, on the same filesystem, keeping its mode."""
    incoming.chmod(target.stat().st_mode if target.exists() else 0o755)
    previous = target.with_name(f".{target.name}.previous-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(previous)
    incoming.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
