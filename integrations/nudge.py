"""Telling Prefect that the inbox has work: at most one nudge per interval, never none.

Every stored event would otherwise become a Prefect event and a flow run; a burst of 500
webhooks would mean 500 runs that each find the inbox already drained. A nudge is sent at
once when none was sent recently, and otherwise once at the end of the interval, so the last
event of a burst is always followed by a run that sees it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("phasegate.nudge")

INBOX_EVENT = "phasegate.inbox.received"
OUTBOX_EVENT = "phasegate.outbox.pending"


def emit(event: str, count: int) -> None:
    """A Prefect event whose resource is the queue it is about (``phasegate.inbox``...)."""
    from prefect.events import emit_event

    queue = event.rsplit(".", 1)[0]
    emit_event(event=event, resource={"prefect.resource.id": queue}, payload={"count": count})


def emit_inbox_event(count: int) -> None:
    emit(INBOX_EVENT, count)


class Nudge:
    """Throttle ``emit`` to one call per ``interval_s`` (leading and trailing edge)."""

    def __init__(
        self, emit: Callable[[int], None] = emit_inbox_event, interval_s: float = 1.0
    ) -> None:
        self.emit = emit
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last = 0.0
        self._waiting = 0
        self._timer: threading.Timer | None = None

    def __call__(self, inbox_id: int, source: str, kind: str) -> None:
        with self._lock:
            self._waiting += 1
            wait = self._last + self.interval_s - time.monotonic()
            if wait <= 0 and self._timer is None:
                self._fire_locked()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._trailing)
                self._timer.daemon = True
                self._timer.start()

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            if self._waiting:
                self._fire_locked()

    def _fire_locked(self) -> None:
        count, self._waiting, self._last = self._waiting, 0, time.monotonic()
        try:
            self.emit(count)
        except Exception:  # the inbox keeps the events; reconcile will find them
            log.warning("could not nudge Prefect about %d inbox event(s)", count, exc_info=True)

    def close(self) -> None:
        """Send what is still waiting (on shutdown)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._waiting:
                self._fire_locked()
