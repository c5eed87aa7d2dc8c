"""Keeping a claim on inbox events or outbox rows alive while they are being worked on.

A claim that is older than ``PHASEGATE_RECLAIM_AFTER_S`` means its worker died, and another
run takes the rows over. A live worker must therefore say it is still alive, or a batch that
takes longer than that (a slow source, a slow API, retries with backoff, rate-limit waits)
would be worked on twice at once: events processed twice, a Slack message posted twice. It
says so from a background thread, every third of the reclaim time, so that no single slow
step can outlast the claim; when the process dies the renewals stop with it.

One mechanism for both: the caller says how its claims are renewed (``process-inbox``:
``Store.renew_inbox_claims`` of its batch; ``deliver-outbox``: ``Store.renew_outbox_claims``
of the rows it still holds, which skips any it lost).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

log = logging.getLogger("phasegate.claims")


@contextmanager
def kept_claimed(
    renew: Callable[[], object], reclaim_after: timedelta, what: str = "claim"
) -> Iterator[None]:
    """Call ``renew`` every third of ``reclaim_after`` until the block ends (a zero reclaim
    time makes every claim stale at once: nothing to keep). ``what`` names the claims in the
    log should a renewal fail."""
    every_s = reclaim_after.total_seconds() / 3
    if every_s <= 0:
        yield
        return
    stop = threading.Event()

    def renewing() -> None:
        while not stop.wait(every_s):
            try:
                renew()
            except Exception:  # a missed renewal risks a second attempt, which is safe in effect
                log.warning("could not renew the %s", what, exc_info=True)

    thread = threading.Thread(target=renewing, name="claim-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
