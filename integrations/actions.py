"""Side effects, performed from the outbox: one handler per outbox ``kind``.

A handler gets the outbox row's payload and idempotency key and either succeeds (returning
the id of what it made, so a retry can update instead of duplicate), raises
:class:`RetryLater` (rate limits, outages; honours ``Retry-After``) or :class:`Permanent`
(a request that will never succeed, reported rather than retried forever).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from gates.store import OutboxRow

log = logging.getLogger("phasegate.actions")


class RetryLater(Exception):
    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.after_s = after_s


class Permanent(Exception):
    pass


class Handler(Protocol):
    """``retried``: this row was attempted before -- an attempt that ended in
    :class:`RetryLater`, or one whose worker died before recording it (its claim taken over).
    Either may have made part or all of what the row is to make (a check run GitHub created
    before a later request of the same attempt failed; a message posted just before the kill),
    and the outbox recorded none of it. A handler that can look for that does so then, and
    only then: a first attempt cannot have made anything."""

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None: ...


def newest_state(
    latest: Callable[[str], OutboxRow | None], prefix: str, key: str, payload: dict[str, Any]
) -> dict[str, Any] | None:
    """The state to give the one outside object that every outbox row under ``prefix`` is
    about (a check run, a label, a Slack message) when row ``key`` is performed: the state
    queued last (its payload), or None when that newest state has been performed already --
    the object shows it, and this older row must write nothing.

    Why: the rows of one object are performed out of order. A row held back by a rate limit
    or an outage runs after a newer one and would otherwise put back the older state it was
    queued with (a blocked check over a passed one, an old phase label); instead it sends the
    newest state while that is still on its way, and nothing once it has arrived.
    ``latest(prefix)`` is :meth:`gates.store.Store.latest_outbox`."""
    newest = latest(prefix)
    if newest is None or newest.idempotency_key == key:
        return payload
    if newest.status == "done":
        log.info(
            "%s: superseded by %s, already performed; the older state is not sent",
            key,
            newest.idempotency_key,
        )
        return None
    return newest.payload


class DecisionLog:
    """The embedded default's side effect: every decision appended to a JSON-lines file.

    Idempotent by key: a line already written for this key (the process died before the
    outbox row was marked done) is not written again. The keys are read from the file once,
    on the first write, and then kept: one deliver-outbox run performs many decisions, and
    re-reading a growing file for each would make the run quadratic. That is safe because
    the outbox hands a row to one run at a time, and a dead run's rows go to a later run,
    which reads the file afresh.

    A process killed in the middle of a write leaves a torn last line. It is cut off (and
    logged) before anything is appended after it: otherwise the next record would be glued
    to the fragment, and every reader of the file would fail on that line from then on.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: dict[str, int] | None = None
        """key -> line number, once the file has been read."""
        self._lines = 0

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        written = self._written if self._written is not None else self._read()
        if key in written:
            return f"{self.path.name}:{written[key]}"
        line = json.dumps({"key": key, **payload}, sort_keys=True) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line.encode())  # one write: never half a line but for a kill
        finally:
            os.close(descriptor)
        self._lines += 1
        written[key] = self._lines
        return f"{self.path.name}:{self._lines}"

    def _read(self) -> dict[str, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.path.read_bytes() if self.path.exists() else b""
        if data and not data.endswith(b"\n"):
            self._repair(data)
            data = self.path.read_bytes()
        self._written = {}
        lines = data.splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                self._written[json.loads(line)["key"]] = number
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d is not a decision record; skipped", self.path, number)
        self._lines = len(lines)
        return self._written

    def _repair(self, data: bytes) -> None:
        """The file ends inside a line: keep it if it is a whole record that only lost its
        newline, cut it off otherwise."""
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])["key"]
        except (ValueError, KeyError, TypeError):
            log.warning(
                "%s ends with a torn line (%d bytes, a write cut short by a crash): removed",
                self.path,
                len(data) - start,
            )
            with self.path.open("r+b") as sink:
                sink.truncate(start)
        else:
            with self.path.open("ab") as sink:
                sink.write(b"\n")
