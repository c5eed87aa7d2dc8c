"""Policies from the repository: what a pull request proposes, and what the default branch holds.

Gates always evaluate with the policies of the protected default branch; a PR that edits
``policies/`` cannot loosen its own gate. What a PR proposes is only read to check it:
validated, and compared with the policies in force. A push to the default branch that
changes them is what changes the policies in force (:func:`install`): the files at the
branch's head are fetched, validated, and only if valid swapped in for the policy directory
phasegate runs with; an invalid set, or one GitHub lists only in part, never replaces a
valid one, and a push delivered after a newer one never rolls it back.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

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
    """What became of a push's policies: ``installed`` or not, the note to record, and the
    commit it is about (``sha``: the branch's head once read, whose policies are installed)."""

    installed: bool
    note: str
    sha: str


def install(
    source: GithubSource, repo: str, branch: str, sha: str, folder: str, target: Path
) -> Installed:
    """Make the policies of ``repo``'s ``folder`` at the head of ``branch`` the ones in
    ``target``, if valid; ``sha`` is the commit the push delivery names.

    GitHub does not deliver pushes in order, and a redelivery (by an admin, or reconcile
    re-driving a failed one) can come at any time, so neither arrival time nor delivery order
    says which push is newer. The branch does: one read of its ref. A push whose commit is
    still the head is installed. A push that was superseded installs nothing of its own:
    if the head's policies are in force already it is ignored; otherwise the head's are
    installed in its place -- the push that superseded it may not touch ``folder`` and so
    installs nothing itself, and the policies in force would stay older than the branch.

    The files are written to a new directory beside ``target`` and validated there; a valid
    set then replaces ``target`` by renaming (a reader sees the old set or the new one, never
    a mix; in the instant between the two renames it sees no directory, and
    ``ActivePolicies`` keeps the set it has). Raises ``GithubUnavailable`` when GitHub could
    not be asked.
    """
    target = Path(target)
    short = sha[:12]
    ref = source.reader.get(repo, f"/repos/{repo}/git/ref/heads/{quote(branch, safe='/')}")
    if ref is None:
        return Installed(
            False,
            f"policies of {repo}@{short} not installed: branch {branch} no longer exists",
            sha,
        )
    head = str(ref["object"]["sha"])
    said = f"policies of {repo}@{head[:12]}"
    if head != sha:
        superseded = f"push of {repo}@{short} superseded by {head[:12]}, the head of {branch}"
        if _installed_from(target) == (repo, head):
            return Installed(False, f"{superseded}, whose policies are in force", head)
        said = f"{superseded}: {said}"
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".{target.name}.incoming-", dir=target.parent))
    try:
        try:
            files = fetch(source, repo, head, folder, incoming)
        except IncompleteTree as exc:
            return Installed(
                False, f"{said} not installed; the policy set in force stays: {exc}", head
            )
        loaded = load_policies(incoming)
        if loaded.policies is None:
            errors = in_repository(loaded.errors, incoming, folder)
            return Installed(
                False,
                f"{said} are invalid; the policy set in force stays "
                f"({len(errors)} problem(s)): " + "; ".join(map(str, errors)),
                head,
            )
        (incoming / SOURCE_MARKER).write_text(json.dumps({"repo": repo, "sha": head}))
        _swap(incoming, target)
        return Installed(
            True,
            f"{said} installed ({len(files)} file(s), "
            f"policy set {loaded.policies.policy_hash[:12]})",
            head,
        )
    finally:
        shutil.rmtree(incoming, ignore_errors=True)  # gone already once swapped in


def _installed_from(directory: Path) -> tuple[str, str] | None:
    """(repo, commit) of the push the policies in ``directory`` were installed from."""
    try:
        found = json.loads((directory / SOURCE_MARKER).read_text())
        return str(found["repo"]), str(found["sha"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _swap(incoming: Path, target: Path) -> None:
    """Put ``incoming`` where ``target`` is, on the same filesystem, keeping its mode."""
    incoming.chmod(target.stat().st_mode if target.exists() else 0o755)
    previous = target.with_name(f".{target.name}.previous-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(previous)
    incoming.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
