"""Alertmanager (webhook v4) and Grafana alert notifications as phasegate events.

One notification groups alerts; each alert becomes its own event, because each may belong
to another project (``project`` or ``model`` label) and fire its own regression rule.
Grafana's unified alerting sends the same shape as Alertmanager, plus a few fields.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from gates.events import Event


def delivery_id(body: dict[str, Any]) -> str:
    """Alertmanager sends no delivery id: the group, its status and its alerts' times identify
    a notification, so a repeat of the same notification is recognised as one."""
    given = body.get("alerts", [])
    if not isinstance(given, list):
        raise ValueError(f"'alerts' must be a list of alerts, found {json.dumps(given)[:80]}")
    alerts = [
        [a.get("fingerprint"), a.get("status"), a.get("startsAt"), a.get("endsAt")]
        for a in given
        if isinstance(a, dict)
    ]
    key = json.dumps([body.get("groupKey"), body.get("status"), sorted(map(str, alerts))])
    return "am-" + hashlib.sha256(key.encode()).hexdigest()[:32]


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
