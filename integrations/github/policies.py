"""The policies a pull request proposes, read from its head commit.

Gates always evaluate with the policies of the protected default branch (the directory
phasegate runs with); a PR that edits ``policies/`` cannot loosen its own gate. What the PR
proposes is only read to check it: validated, and compared with the policies in force.
"""

from __future__ import annotations

from pathlib import Path

from integrations.github.evidence import GithubSource


def fetch(source: GithubSource, repo: str, ref: str, folder: str, into: Path) -> list[str]:
    """Write the ``folder`` of ``repo`` at ``ref`` under ``into``; the files' repo paths."""
    tree = source.reader.get(repo, f"/repos/{repo}/git/trees/{ref}", {"recursive": "1"}) or {}
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
