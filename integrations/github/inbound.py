"""GitHub webhook deliveries as phasegate events.

The event name comes from ``X-GitHub-Event`` and the action from the body; the repository's
``full_name`` routes it to a project. Deliveries about pull requests (the PR itself, its
reviews, comments on it, check runs and suites on its head) carry the PR's number, so the
decision is made for that PR and shown on it; several PRs in one check suite become one
event each.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gates.events import Event


def kind(event_name: str, body: dict[str, Any]) -> str:
    action = body.get("action")
    return f"{event_name}.{action}" if isinstance(action, str) else event_name


def pull_requests(body: dict[str, Any]) -> list[int]:
    """The pull requests a delivery is about (none for issues, pushes, installations)."""
    if isinstance(body.get("pull_request"), dict) and body["pull_request"].get("number"):
        return [int(body["pull_request"]["number"])]
    issue = body.get("issue")
    if isinstance(issue, dict) and issue.get("pull_request") and issue.get("number"):
        return [int(issue["number"])]
    for holder in ("check_run", "check_suite"):
        if isinstance(body.get(holder), dict):
            found = body[holder].get("pull_requests") or []
            return sorted(
                {int(p["number"]) for p in found if isinstance(p, dict) and p.get("number")}
            )
    return []


def normalise(event_name: str, body: dict[str, Any], received_at: datetime) -> list[Event]:
    repo = (body.get("repository") or {}).get("full_name")
    subject = {"repo": repo} if isinstance(repo, str) else {}
    item = body.get("pull_request") or body.get("issue") or {}
    labels = {
        lbl["name"]: "true"
        for lbl in (item.get("labels") or [] if isinstance(item, dict) else [])
        if isinstance(lbl, dict) and isinstance(lbl.get("name"), str)
    }
    base = {
        "source": "github",
        "kind": kind(event_name, body),
        "labels": labels,
        "occurred_at": received_at.astimezone(UTC),
        "payload": body,
    }
    pulls = pull_requests(body)
    if not pulls:
        return [Event(subject=subject, **base)]
    return [Event(subject={**subject, "pull_request": str(number)}, **base) for number in pulls]
