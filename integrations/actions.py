"""Side effects, performed from the outbox: one handler per outbox ``kind``.

A handler gets the outbox row's payload and idempotency key and either succeeds (returning
the id of what it made, so a retry can update instead of duplicate), raises
:class:`RetryLater` (rate limits, outages; honours ``Retry-After``) or :class:`Permanent`
(a request that will never succeed, reported rather than retried forever).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class RetryLater(Exception):
    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.after_s = after_s


class Permanent(Exception):
    pass


class Handler(Protocol):
    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None
    ) -> str | None: ...


class DecisionLog:
    """The embedded default's side effect: every decision appended to a JSON-lines file.

    Idempotent by key: a line already written for this key (the process died before the
    outbox row was marked done) is not written again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, key: str, payload: dict[str, Any], external_id: str | None) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            for number, line in enumerate(self.path.read_text().splitlines(), start=1):
                if json.loads(line).get("key") == key:
                    return f"{self.path.name}:{number}"
        with self.path.open("a") as sink:
            sink.write(json.dumps({"key": key, **payload}, sort_keys=True) + "\n")
        return f"{self.path.name}:{len(self.path.read_text().splitlines())}"
