"""Stored inbox payloads back into events, whichever sender they came from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gates.events import Event
from integrations.github import inbound as github
from integrations.mlflow import inbound as mlflow
from integrations.monitoring import inbound as monitoring
from integrations.monitoring import reports
from integrations.slack import inbound as slack


def normalise(
    source: str,
    kind: str,
    payload: dict[str, Any],
    received_at: datetime,
    delivery_id: str | None = None,
) -> list[Event]:
    """The events in one stored delivery (an alert notification may hold several)."""
    if source == "github":
        return github.normalise(kind.split(".", 1)[0], payload, received_at, delivery_id)
    if source == "mlflow":
        return mlflow.normalise(payload, received_at)
    if source == "monitoring" and kind == reports.KIND:
        return reports.normalise(payload, received_at)
    if source == "monitoring":
        return monitoring.normalise(payload, received_at)
    if source == "slack":
        return slack.normalise(payload, received_at)
    return [
        Event(
            source=source,
            kind=kind,
            subject=payload.get("subject", {}),
            occurred_at=received_at,
            payload=payload,
        )
    ]  # type: ignore[arg-type]
