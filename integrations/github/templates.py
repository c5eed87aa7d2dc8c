"""Set a team's repository up for the gates: DSLP issue templates and labels.

The gates read sections of Ask/Data/Experiment/Model issues and compare them with the
repository's own templates; starting from these templates makes the two agree from day one.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from integrations.github.actions import AlreadyExists, NotFound, send, send_all
from integrations.github.client import GithubAccess

TEMPLATES = Path(__file__).resolve().parents[2] / "examples" / "github" / "ISSUE_TEMPLATE"
LABELS = {
    "Ask": "5319e7",
    "Data": "0e8a16",
    "Explore": "c2e0c6",
    "Experiment": "1d76db",
    "Model": "fbca04",
    "Deploy": "d93f0b",
    "succeeded": "0e8a16",
    "failed": "b60205",
}


def install(access: GithubAccess, repo: str, branch: str | None = None) -> list[str]:
    """Create or update the templates and labels; returns what was done, line by line."""
    done = []
    for template in sorted(TEMPLATES.glob("*.yml")):
        path = f".github/ISSUE_TEMPLATE/{template.name}"
        existing = _get(access, repo, f"/repos/{repo}/contents/{path}", branch)
        text = template.read_text()
        if existing and base64.b64decode(existing.get("content", "")).decode() == text:
            done.append(f"{path}: already up to date")
            continue
        body: dict[str, Any] = {
            "message": f"phasegate: DSLP issue template {template.stem}",
            "content": base64.b64encode(text.encode()).decode(),
        }
        if existing:
            body["sha"] = existing["sha"]
        if branch:
            body["branch"] = branch
        send(access, repo, "PUT", f"/repos/{repo}/contents/{path}", body)
        done.append(f"{path}: {'updated' if existing else 'created'}")
    have = {label["name"].lower() for label in send_all(access, repo, f"/repos/{repo}/labels")}
    for name, color in LABELS.items():
        if name.lower() in have:
            continue
        try:
            send(access, repo, "POST", f"/repos/{repo}/labels", {"name": name, "color": color})
            done.append(f"label {name}: created")
        except AlreadyExists:  # made meanwhile, or listed before GitHub showed it
            done.append(f"label {name}: already there")
    return done


def _get(access: GithubAccess, repo: str, path: str, branch: str | None) -> dict[str, Any] | None:
    """The file at ``path`` (None when there is none yet)."""
    try:
        return send(access, repo, "GET", path, None, {"ref": branch} if branch else None)
    except NotFound:
        return None
