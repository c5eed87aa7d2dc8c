"""MLflow (≥ 3.3) registry webhooks as phasegate events.

MLflow wraps every payload as ``{"entity", "action", "timestamp", "data"}``; the registered
model's ``name`` routes it. ``model_version.created`` carries ``run_id: null``, so evidence is
read from the registry, never from the webhook.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gates.events import Event


def kind(body: dict[str, Any]) -> str:
    return f"{body.get('entity', 'unknown')}.{body.get('action', 'unknown')}"


def normalise(body: dict[str, Any], received_at: datetime) -> list[Event]:
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    subject = {k: str(data[k]) for k in ("name", "version", "alias") if data.get(k) is not None}
    if "name" in subject:
        subject["model"] = subject.pop("name")
    try:
        occurred = datetime.fromisoformat(str(body.get("timestamp")))
    except ValueError:
        occurred = received_at
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return [
        Event(source="mlflow", kind=kind(body), subject=subject, occurred_at=occurred, payload=body)
    ]
