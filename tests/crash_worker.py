"""Run process-inbox or deliver-outbox slowed down, to be killed with -9 by test_crash.py.

Slowness is the only thing added: it opens the windows in which a crash hurts.

- ``process-inbox``: every evidence read and every write a decision makes (its evaluation,
  the phase move, each side effect queued) waits first, so a kill can land after some units
  of the batch are recorded and before the rest, while the batch's events are still claimed.
- ``deliver-outbox``: nothing is slowed here; the test's fake GitHub holds its answers to
  check-run creations, so a kill can land after GitHub made a check run and before the
  outbox row that asked for it is marked done.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.runtime import runtime
from gates.policy import Project

DELAY_S = 0.5
DECISION_WRITES = ("record_evaluation", "transition", "enqueue_outbox")


class Slow:
    """An evidence source that takes ``delay_s`` longer to read."""

    def __init__(self, source: Any, delay_s: float) -> None:
        self.source = source
        self.name = source.name
        self.delay_s = delay_s

    def collect(self, project: Project, pull_request: int | None) -> dict[str, Any]:
        time.sleep(self.delay_s)
        return self.source.collect(project, pull_request)


def paused(write: Callable[..., Any], delay_s: float) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        time.sleep(delay_s)
        return write(*args, **kwargs)

    return call


if __name__ == "__main__":
    rt = runtime()
    if sys.argv[1:] == ["deliver-outbox"]:
        deliver_outbox()
    else:
        rt.sources = [Slow(s, DELAY_S) for s in rt.sources]
        for name in DECISION_WRITES:
            setattr(rt.store, name, paused(getattr(rt.store, name), DELAY_S))
        process_inbox()
