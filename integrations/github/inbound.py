"""GitHub webhook deliveries as phasegate events.

The event name comes from ``X-GitHub-Event`` and the action from the body; the repository's
``full_name`` routes it. DSLP-specific meaning (branch names, labels) is left to the gate
evidence, so every delivery of a known repository re-evaluates that project.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gates.events import Event


def kind(event_name: str, body: dict[str, Any]) -> str:
    action = body.get("action")
    return f"{event_name}.{action}" if isinstance(action, str) else event_name


def normalise(event_name: str, body: dict[str, Any], received_at: datetime) -> list[Event]:
    repo = (body.get("repository") or {}).get("full_name")
    subject = {"repo": repo} if isinstance(repo, str) else {}
    pull = body.get("pull_request") or {}
    if isinstance(pull, dict) and pull.get("number"):
        subject["pull_request"] = str(pull["number"])
        subject["branch"] = str((pull.get("head") or {}).get("ref", ""))
    labels = {
        lbl["name"]: "true"
        for lbl in (body.get("issue") or pull or {}).get("labels", [])
        if isinstance(lbl, dict) and isinstance(lbl.get("name"), str)
    }
    return [
        Event(
            source="github",
            kind=kind(event_name, body),
            subject=subject,
            labels=labels,
            occurred_at=received_at.astimezone(UTC),
            payload=body,
        )
    ]
