"""Monitoring evidence: what monitoring told phasegate about a project, from the inbox.

Alertmanager and Grafana notifications and Evidently reports arrive through the receiver and
are kept in the inbox (source ``monitoring``); that record is the evidence. Rows received
within the window (``PHASEGATE_MONITORING_WINDOW_DAYS``) are read back, and each event is
routed like any other (``project`` / ``model`` label, or the report's project or model).

- ``monitoring.signals``: proof that monitoring runs — the **first** heartbeat (a firing alert
  whose name is in ``PHASEGATE_HEARTBEAT_ALERTS``, e.g. Prometheus' ``Watchdog``), the first
  report and the first other alert, per model. Only the first of each: approvals are bound
  to the digest of what a gate reads, and a heartbeat every minute must not void them.

  A heartbeat's time is when its alert started firing (``startsAt``), not when a
  notification arrived: the receiver keeps one repeat of a firing heartbeat per day (see
  :func:`integrations.monitoring.inbound.delivery_id`), so an alive heartbeat always has a
  notification inside the window, and every one of them names the same ``startsAt`` — the
  signal stays the same while the heartbeat keeps firing, however many days pass, and
  changes only when it stops and starts again (a restarted Prometheus).
- ``monitoring.alerts``: the latest state (``firing`` or ``resolved``) of each alert, newest
  first, heartbeats excluded — a resolved alert stays on record as resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from gates.events import Event, route
from gates.policy import PolicySet, Project
from gates.store import Store
from gates.store.tables import InboxEventRow
from integrations.inbound import normalise
from integrations.monitoring.reports import KIND as REPORT

ALERT_STATES = ("alert.firing", "alert.resolved")
ROWS_READ = 10_000
"""Most inbox rows one collection reads (the newest in the window)."""


class MonitoringSource:
    """An :class:`~integrations.sources.EvidenceSource` for ``monitoring.*``."""

    name = "monitoring"

    def __init__(
        self,
        store: Store,
        policies: Callable[[], PolicySet],
        heartbeats: Iterable[str],
        window: timedelta = timedelta(days=30),
        max_alerts: int = 50,
    ) -> None:
        self.store = store
        self.policies = policies
        self.heartbeats = {h.lower() for h in heartbeats}
        self.window = window
        self.max_alerts = max_alerts
        self._events: dict[int, list[Event]] = {}  # inbox rows never change once stored

    def collect(self, project: Project, pull_request: int | None = None) -> dict[str, Any]:
        """The same for every pull request: a model is monitored in production, not per PR."""
        since = datetime.now(UTC) - self.window
        rows = self.store.inbox_events(
            source="monitoring", since=since, limit=ROWS_READ, newest=True
        )
        policies = self.policies()
        signals: dict[tuple[str, str | None], dict[str, Any]] = {}
        alerts: dict[str, dict[str, Any]] = {}
        for row in rows:
            for event in self._read(row):
                if project.key not in route(policies, event).projects:
                    continue
                signal = self._signal(event, row.received_at)
                if signal is not None:
                    key = signal["kind"], signal["model"]
                    if key not in signals or signal["received_at"] < signals[key]["received_at"]:
                        signals[key] = signal
                if event.kind in ALERT_STATES and not self._is_heartbeat(event):
                    alerts[_identity(event)] = _alert(event)
        if not signals and not alerts:
            return {}
        latest = sorted(alerts.values(), key=lambda a: a["starts_at"] or "", reverse=True)
        return {
            "monitoring": {
                "signals": [
                    {**s, "received_at": s["received_at"].isoformat()}
                    for s in sorted(signals.values(), key=lambda s: s["received_at"])
                ],
                "alerts": latest[: self.max_alerts],
            }
        }

    def _read(self, row: InboxEventRow) -> list[Event]:
        if row.id not in self._events:
            if len(self._events) > 4 * ROWS_READ:
                self._events.clear()
            try:
                events = normalise(row.source, row.kind, row.payload, row.received_at)
            except ValueError:  # an unreadable row is failed by process-inbox, with the reason
                events = []
            self._events[row.id] = events
        return self._events[row.id]

    def _is_heartbeat(self, event: Event) -> bool:
        return event.labels.get("alertname", "").lower() in self.heartbeats

    def _signal(self, event: Event, received_at: datetime) -> dict[str, Any] | None:
        model = event.subject.get("model") or event.labels.get("model")
        base: dict[str, Any] = {"received_at": received_at, "model": model}
        if event.kind == f"{REPORT}.received":
            summary = event.payload.get("summary", {})
            drift = summary.get("dataset_drift")
            status = None if drift is None else ("drift" if drift else "no drift")
            return {**base, "kind": "report", "status": status, "summary": summary}
        if event.kind == "alert.firing":
            name = event.labels.get("alertname", "")
            kind = "heartbeat" if self._is_heartbeat(event) else "alert"
            url = event.payload.get("url")
            if kind == "heartbeat":  # firing since: the same in every repeat (see above)
                base["received_at"] = min(event.occurred_at, received_at)
            return {
                **base,
                "kind": kind,
                "status": "firing",
                "url": url,
                "summary": {"alertname": name},
            }
        return None


def _identity(event: Event) -> str:
    fingerprint = (event.payload.get("alert") or {}).get("fingerprint")
    return str(fingerprint) if fingerprint else repr(sorted(event.labels.items()))


def _alert(event: Event) -> dict[str, Any]:
    return {
        "name": event.labels.get("alertname", ""),
        "status": event.kind.removeprefix("alert."),
        "labels": event.labels,
        "starts_at": event.occurred_at.isoformat(),
        "url": event.payload.get("url"),
    }
