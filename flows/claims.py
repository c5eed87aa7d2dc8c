"""Keeping a claim on inbox events alive while they are being worked on.

A claim that is older than ``PHASEGATE_RECLAIM_AFTER_S`` means its worker died, and another
run takes the events over. A live worker must therefore say it is still alive, or a batch
that takes longer than that (a slow source, retries with backoff) would be processed twice
at once. It says so from a background thread, every third of the reclaim time, so that no
single slow step can outlast the claim; when the process dies the renewals stop with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from gates.store import Store

log = logging.getLogger("phasegate.claims")


@contextmanager
def kept_claimed(store: Store, event_ids: list[int], reclaim_after: timedelta) -> Iterator[None]:
    """Renew the claim on ``event_ids`` until the block ends (a zero reclaim time makes every
    claim stale at once: nothing to keep)."""
    every_s = reclaim_after.total_seconds() / 3
    if every_s <= 0:
        yield
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(every_s):
            try:
                store.renew_inbox_claims(event_ids)
            except Exception:  # a missed renewal risks a second attempt, which is safe in effect
                log.warning(
                    "could not renew the claim on %d event(s)", len(event_ids), exc_info=True
                )

    thread = threading.Thread(target=renew, name="inbox-claim", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
