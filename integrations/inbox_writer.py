"""The receiver's inbox writes, committed together (group commit).

Every accepted webhook must be stored before it is answered. Written one by one, each request
waits its turn at SQLite's single write lock and pays a commit of its own, and under a burst
the queue for the lock is what the senders wait on. Here the requests that arrive while one
write is in progress are written together in the next: one transaction and one disk flush
for all of them, each request answered once its own event is stored. There is no timer: a
lone request is written at once, and the batch grows only as fast as requests pile up.

One bad event must not take the others down with it: if the database refuses a row of a
batch, its events are written again one by one, so only the one that cannot be stored fails.
If the database itself fails, the whole batch fails at once (503: the senders retry).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import DataError, IntegrityError
from starlette.concurrency import run_in_threadpool

from gates.store import InboxEvent, Store

log = logging.getLogger("phasegate.receiver")

ONE_ROW_ERRORS = (IntegrityError, DataError)
"""What the database refuses one row for. Anything else (locked past the busy timeout, gone)
would fail each event again, one after the other, while new requests wait behind them."""

Stored = tuple[int, bool]
"""The event's inbox id, and whether it is new (False: a redelivery)."""


class InboxWriter:
    """Stores events for one event loop's requests; :meth:`add` returns a future of
    :data:`Stored`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[tuple[InboxEvent, asyncio.Future[Stored]]] = []
        self._writing: asyncio.Task[None] | None = None

    def add(self, event: InboxEvent) -> asyncio.Future[Stored]:
        stored: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, stored))
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write_all())
        return stored

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._write(batch)
        finally:
            self._writing = None

    async def _write(self, batch: list[tuple[InboxEvent, asyncio.Future[Stored]]]) -> None:
        try:
            results = await run_in_threadpool(self.store.add_inbox_events, [e for e, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not isinstance(exc, ONE_ROW_ERRORS):
                for _, stored in batch:  # the database itself failed: all of them, at once
                    _settle(stored, exception=exc)
                return
            log.warning("writing %d events together failed (%s); one by one", len(batch), exc)
            for one in batch:
                await self._write([one])
            return
        for (_, stored), result in zip(batch, results, strict=True):
            _settle(stored, result=result)


def _settle(
    stored: asyncio.Future[Stored],
    result: Stored | None = None,
    exception: Exception | None = None,
) -> None:
    if stored.done():  # nobody waits any more (a request that went away)
        return
    if exception is not None:
        stored.set_exception(exception)
    else:
        assert result is not None
        stored.set_result(result)
