"""Alertmanager (webhook v4) and Grafana alert notifications as phasegate events.

One notification groups alerts; each alert becomes its own event, because each may belong
to another project (``project`` or ``model`` label) and fire its own regression rule.
Grafana's unified alerting sends the same shape as Alertmanager, plus a few fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gates.events import Event


def delivery_id(
    body: dict[str, Any], heartbeats: Iterable[str] = (), received_at: datetime | None = None
) -> str:
    """Alertmanager sends no delivery id: the group, its status and its alerts' times identify
    a notification, so a repeat of the same notification is recognised as one.

    Except for a heartbeat: an always-firing ``Watchdog`` repeats the very same notification
    for ever, and if only the first were kept it would leave the monitoring window one day and
    monitoring would look dead while it is alive. A notification carrying a firing alert named
    in ``heartbeats`` is therefore kept once per (UTC) day of ``received_at`` — often enough
    to stay in any window, rarely enough that the inbox does not grow with every repeat.
    """
    given = body.get("alerts", [])
    if not isinstance(given, list):
        raise ValueError(f"'alerts' must be a list of alerts, found {json.dumps(given)[:80]}")
    common = body.get("commonLabels") if isinstance(body.get("commonLabels"), dict) else {}
    alerts = [a for a in given if isinstance(a, dict)]
    key: list[Any] = [
        body.get("groupKey"),
        body.get("status"),
        sorted(
            str([a.get("fingerprint"), a.get("status"), a.get("startsAt"), a.get("endsAt")])
            for a in alerts
        ),
    ]
    names = {h.lower() for h in heartbeats}
    if any(_firing_name(a, body, common).lower() in names for a in alerts):
        key.append((received_at or datetime.now(UTC)).astimezone(UTC).date().isoformat())
    return "am-" + hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]


def _firing_name(alert: dict[str, Any], body: dict[str, Any], common: dict[str, Any]) -> str:
    """The alert's name if it fires ('' otherwise), as :func:`normalise` reads both."""
    if str(alert.get("status", body.get("status", "firing"))) != "firing":
        return ""
    labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
    return str({**common, **labels}.get("alertname", ""))


def kind(body: dict[str, Any]) -> str:
    return f"alert.{body.get('status', 'unknown')}"


def _time(value: Any, default: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return default
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalise(body: dict[str, Any], received_at: datetime) -> list[Event]:
    common = body.get("commonLabels") if isinstance(body.get("commonLabels"), dict) else {}
    events = []
    for alert in body.get("alerts", []):
        if not isinstance(alert, dict):
            continue
        labels = {str(k): str(v) for k, v in {**common, **(alert.get("labels") or {})}.items()}
        status = str(alert.get("status", body.get("status", "firing")))
        subject = {"alertname": labels.get("alertname", "")}
        events.append(
            Event(
                source="monitoring",
                kind=f"alert.{status}",
                subject=subject,
                labels=labels,
                occurred_at=_time(alert.get("startsAt"), received_at),
                payload={
                    "alert": alert,
                    "receiver": body.get("receiver"),
                    "url": alert.get("generatorURL"),
                },
            )
        )
    return events
