"""Slack interaction payloads (button clicks, modal submissions) as phasegate events.

Slack posts ``application/x-www-form-urlencoded`` with the JSON in a ``payload`` field. What a
click means (an approval) is the Slack integration's job; here it is stored and routed by the
project named in the action's value.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from gates.events import Event


class MalformedInteraction(ValueError):
    pass


def parse(body: bytes) -> dict[str, Any]:
    fields = parse_qs(body.decode("utf-8", errors="replace"))
    if "payload" not in fields:
        raise MalformedInteraction("no 'payload' field in the form body")
    try:
        payload = json.loads(fields["payload"][0])
    except json.JSONDecodeError as exc:
        raise MalformedInteraction(f"payload is not JSON: {exc.msg}") from None
    if not isinstance(payload, dict):
        raise MalformedInteraction("payload is not a JSON object")
    return payload


def delivery_id(payload: dict[str, Any]) -> str:
    """A click is identified by its action timestamp; a submission by its view and its hash.
    A payload with none of them (another interaction type) by a hash of its content, so a
    redelivery is still one event and a different payload is never taken for a duplicate."""
    actions = payload.get("actions") or [{}]
    if not isinstance(actions, list):
        raise ValueError(f"'actions' must be a list, found {json.dumps(actions)[:80]}")
    first = actions[0] if isinstance(actions[0], dict) else {}
    view = payload.get("view") if isinstance(payload.get("view"), dict) else {}
    parts = [first.get("action_ts"), view.get("id"), view.get("hash"), payload.get("trigger_id")]
    named = "-".join(str(p) for p in parts if p)
    if not named:
        content = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        named = "sha256-" + hashlib.sha256(content.encode()).hexdigest()
    return "slack-" + named


def normalise(payload: dict[str, Any], received_at: datetime) -> list[Event]:
    subject = {}
    for action in payload.get("actions") or []:
        value = action.get("value") if isinstance(action, dict) else None
        try:
            decoded = json.loads(value) if isinstance(value, str) else {}
        except json.JSONDecodeError:
            decoded = {}
        if isinstance(decoded, dict) and isinstance(decoded.get("project"), str):
            subject["project"] = decoded["project"]
    return [
        Event(
            source="slack",
            kind=f"slack.{payload.get('type', 'unknown')}",
            subject=subject,
            occurred_at=received_at.astimezone(UTC),
            payload=payload,
        )
    ]
