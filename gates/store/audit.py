"""The audit log's hash chain, as pure functions.

Each row's hash covers its content and the hash of the row before it, so altering, inserting or
deleting a row breaks the chain at that row, and the rows alone are enough to find where. Only
cutting rows off the end leaves an intact (shorter) chain: keep the reported ``last_hash``
somewhere else to detect that.
"""

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

GENESIS = "0" * 64
"""The ``prev_hash`` of the first row."""


def as_utc(at: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused because its zone would be a guess."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} given; pass a timezone-aware one")
    return at.astimezone(UTC)


def iso_utc(at: datetime) -> str:
    """ISO 8601 in UTC with microseconds: one spelling per instant, whatever zone it came in."""
    return as_utc(at).isoformat(timespec="microseconds")


def _encode(value: object) -> str:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def canonical_json(value: Any) -> bytes:
    """The one byte string a value hashes as: sorted keys, no spaces, no NaN, UTC datetimes."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_encode,
    ).encode()


def stored_json(value: Any) -> str:
    """``value`` as the text of a JSON column: compact, keys in their given order (a payload
    reads back as it was sent), no NaN, datetimes as UTC ISO strings. Not for hashing: that
    is :func:`canonical_json`, whose sorted keys cost a quarter more on a large payload."""
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_encode
    )


def jsonable(value: Any) -> Any:
    """``value`` as it will read back from a JSON column (datetimes become ISO strings).

    Storing this form, rather than the caller's objects, is what makes a hash computed before the
    write equal to the one recomputed from the stored row.
    """
    return json.loads(canonical_json(value))


def chain_hash(
    *, prev_hash: str, at: datetime, actor: str, action: str, subject: str, data: Any
) -> str:
    """SHA-256 of a row's content together with its predecessor's hash."""
    content = {
        "prev_hash": prev_hash,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "data": data,
    }
    return hashlib.sha256(canonical_json(content)).hexdigest()


class ChainLink(Protocol):
    """What verification reads from a stored audit row."""

    id: int | None
    at: datetime
    actor: str
    action: str
    subject: str
    data: Any
    prev_hash: str
    hash: str


class AuditReport(BaseModel):
    """The outcome of checking the chain, worded for the person who has to act on it."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    rows: int
    """Rows read; verification stops at the first broken one."""
    first_bad_id: int | None
    last_hash: str | None
    """Hash of the last good row: record it elsewhere to notice rows cut off the end later."""
    message: str


def verify_chain(links: Iterable[ChainLink]) -> AuditReport:
    """Check every link in id order and report the first row that breaks the chain."""
    prev_hash, prev_id, rows = GENESIS, None, 0
    for link in links:
        rows += 1
        problem = _link_problem(link, prev_hash, prev_id)
        if problem:
            return AuditReport(
                ok=False,
                rows=rows,
                first_bad_id=link.id,
                last_hash=None if prev_id is None else prev_hash,
                message=problem,
            )
        prev_hash, prev_id = link.hash, link.id
    if prev_id is None:
        return AuditReport(
            ok=True, rows=0, first_bad_id=None, last_hash=None, message="the audit log is empty"
        )
    return AuditReport(
        ok=True,
        rows=rows,
        first_bad_id=None,
        last_hash=prev_hash,
        message=f"{rows} audit rows, chain intact; last row {prev_id} has hash {prev_hash}",
    )


def _link_problem(link: ChainLink, prev_hash: str, prev_id: int | None) -> str | None:
    if link.prev_hash != prev_hash:
        after = "the start of the log" if prev_id is None else f"row {prev_id}"
        return (
            f"audit row {link.id} does not follow {after} (prev_hash mismatch): "
            "a row before it was removed, inserted or rewritten"
        )
    content_hash = chain_hash(
        prev_hash=link.prev_hash,
        at=link.at,
        actor=link.actor,
        action=link.action,
        subject=link.subject,
        data=link.data,
    )
    if content_hash != link.hash:
        return (
            f"audit row {link.id} was altered: stored hash {link.hash[:12]}… "
            f"does not match its content ({content_hash[:12]}…)"
        )
    return None
