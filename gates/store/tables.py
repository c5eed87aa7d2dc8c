"""The store's tables.

They live in their own metadata (not ``SQLModel.metadata``) so that the migration check compares
exactly these tables, whatever other SQLModel tables a process happens to import. Every
constraint and index has a fixed name (given here or by the naming convention) that
``migrations/versions`` spells out: later migrations alter constraints by name, and a test
checks that tables, types and names agree with the migrated schema.
"""

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Dialect, Index, MetaData, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from gates.store.audit import as_utc

TransitionKind = Literal["init", "advance", "regress"]
Decision = Literal["approve", "reject"]
InboxStatus = Literal["pending", "processing", "done", "failed", "ignored"]
OutboxStatus = Literal["pending", "processing", "done", "failed"]
OutboxOutcome = Literal["pending", "done", "failed"]
"""How an attempt at a side effect ends; ``pending`` hands it back for a later retry."""

ALEMBIC_VERSION_TABLE = "phasegate_alembic_version"
"""Not alembic's default name, so the store can share a database with another alembic user
(Prefect's server keeps its own ``alembic_version``)."""

NO_DIGEST = ""
"""Stored in ``approvals.digest`` for an approval bound to no digest.

SQL treats NULLs as distinct in a unique constraint (and SQLite cannot be told otherwise), so a
NULL digest would let a double click insert two identical approvals.
"""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC on the Python side.

    SQLite keeps no zone: values are converted to UTC before they are written and marked UTC when
    read. Naive datetimes are refused because their zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class StoreTable(SQLModel, registry=registry(metadata=metadata)):
    """Base of the store's tables; binds them to :data:`metadata`."""


def _at(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


def _text(**kwargs: Any) -> Any:
    return Field(sa_type=Text, **kwargs)


def _json() -> Any:
    return Field(sa_type=JSON)


def _project_fk() -> Any:
    return Field(foreign_key="projects.key")


class ProjectRow(StoreTable, table=True):
    """A project and the phase it is in now; its history is in :class:`TransitionRow`."""

    __tablename__ = "projects"

    key: str = Field(primary_key=True)
    phase: str
    created_at: datetime = _at()
    updated_at: datetime = _at()


class EvaluationRow(StoreTable, table=True):
    """One evaluation of one gate, with what it was computed from, so it can be explained later."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_project_gate_at", "project", "gate", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    project: str = _project_fk()
    gate: str
    status: str
    mode: str
    policy_hash: str
    evidence_digest: str
    gate_digest: str
    result: dict[str, Any] = _json()
    at: datetime = _at()
    pull_request: int | None = None
    """The pull request the gate was checked on (None: the project itself). A PR's
    evaluations are a standing of their own: a project-wide one does not replace them."""


class TransitionRow(StoreTable, table=True):
    """A change of phase, and the evaluation that justified it when there was one."""

    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_project_at", "project", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    project: str = _project_fk()
    from_phase: str | None = None
    to_phase: str
    kind: str
    reason: str = _text()
    evaluation_id: int | None = Field(default=None, foreign_key="evaluations.id")
    rule: str | None = None
    """The regression rule that sent the project back; its hold-down reads when it last did."""
    at: datetime = _at()


class ApprovalRow(StoreTable, table=True):
    """A person's current decision on a gate, for the evidence digest they were shown.

    One row per (project, gate, person, digest): a repeated click finds it unchanged, a change of
    mind updates it (the audit log keeps the earlier decision), so a person never counts as
    approving and rejecting the same evidence at once.
    """

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint(
            "project", "gate", "person", "digest", name="uq_approvals_project_gate_person_digest"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    project: str = _project_fk()
    gate: str
    person: str
    decision: str
    digest: str = Field(default=NO_DIGEST)
    reason: str | None = _text(default=None)
    source: str
    at: datetime = _at()


class WaiverRow(StoreTable, table=True):
    """Permission to let one failing check pass until ``expires_at``."""

    __tablename__ = "waivers"
    __table_args__ = (Index("ix_waivers_project_gate", "project", "gate"),)

    id: int | None = Field(default=None, primary_key=True)
    project: str = _project_fk()
    gate: str
    check_id: str
    person: str
    reason: str = _text()
    at: datetime = _at()
    expires_at: datetime = _at()


class InboxEventRow(StoreTable, table=True):
    """A received webhook, stored before it is answered; the sender's delivery id dedupes it."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_inbox_events_source_delivery_id"),
        Index("ix_inbox_events_status_id", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    delivery_id: str
    kind: str
    payload: dict[str, Any] = _json()
    received_at: datetime = _at()
    status: str = "pending"
    attempts: int = 0
    claimed_at: datetime | None = _at(default=None)
    error: str | None = _text(default=None)
    processed_at: datetime | None = _at(default=None)


class OutboxRow(StoreTable, table=True):
    """A side effect to perform exactly once in effect.

    ``external_id`` remembers what the first attempt created (a check run id, a Slack ``ts``) so
    that a retry updates it instead of posting a second one. A worker claims a row (``processing``
    since ``claimed_at``) before performing it, so no two workers perform it at once; a retry
    waits in ``pending`` until ``not_before`` (a rate limit's ``Retry-After``, a backoff).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
        Index("ix_outbox_status_id", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    kind: str
    payload: dict[str, Any] = _json()
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = _text(default=None)
    external_id: str | None = None
    created_at: datetime = _at()
    claimed_at: datetime | None = _at(default=None)
    not_before: datetime | None = _at(default=None)
    done_at: datetime | None = _at(default=None)


class AuditRow(StoreTable, table=True):
    """One entry of the append-only, hash-chained audit log (see :mod:`gates.store.audit`).

    ``prev_hash`` is unique: two appends that raced past the lock would both point at the same
    predecessor, and the database refuses the second instead of letting the chain fork.
    """

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _at()
    actor: str
    action: str
    subject: str
    data: dict[str, Any] = _json()
    prev_hash: str
    hash: str
