"""The store: phasegate's memory, on SQLite (one box) or PostgreSQL (a team).

Several processes share it (the webhook receiver, flow runs, the CLI), so every method is one
short transaction, every "create" is idempotent by a unique key, and everything that must be
serial (the audit chain, claiming inbox events and outbox rows, migrating) is serialised by the
database itself.
"""

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, get_args

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    TextClause,
    and_,
    bindparam,
    event,
    func,
    or_,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, create_engine, select

from gates.records import Approval, Waiver
from gates.store.audit import (
    GENESIS,
    AuditReport,
    as_utc,
    chain_hash,
    jsonable,
    stored_json,
    verify_chain,
)
from gates.store.tables import (
    NO_DIGEST,
    ApprovalRow,
    AuditRow,
    Decision,
    EvaluationRow,
    InboxEventRow,
    InboxStatus,
    OutboxOutcome,
    OutboxRow,
    ProjectRow,
    TransitionKind,
    TransitionRow,
    UTCDateTime,
    WaiverRow,
)

T = TypeVar("T")
Effect = tuple[str, str, dict[str, Any]]
"""A side effect to queue: its kind, its idempotency key and its payload."""
Claimable = TypeVar("Claimable", InboxEventRow, OutboxRow)

ENGINE_ACTOR = "phasegate"
"""Audit actor for what the engine does on its own (registering a project, moving a phase)."""

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another process's write to finish before failing."""

_WRITE = "phasegate_write"
"""Execution option marking a transaction that will write (SQLite then begins IMMEDIATE)."""


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_AUDIT_LOCK = _lock_key("phasegate.store.audit")
_MIGRATE_LOCK = _lock_key("phasegate.store.migrate")


def _add_inbox(payload: str) -> TextClause:
    return text(
        "INSERT INTO inbox_events (source, delivery_id, kind, payload, received_at, status, "
        f"attempts) VALUES (:source, :delivery_id, :kind, {payload}, :received_at, 'pending', 0) "
        "ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id"
    ).bindparams(bindparam("received_at", type_=UTCDateTime()))


_ADD_INBOX_SQLITE = _add_inbox(":payload")  # SQLite keeps JSON as its text
_ADD_INBOX_POSTGRESQL = _add_inbox("CAST(:payload AS JSON)")


@dataclass(frozen=True)
class InboxEvent:
    """A received event to store: what :meth:`Store.add_inbox_events` takes.

    The payload comes already encoded (:func:`~gates.store.audit.stored_json`): the receiver
    encodes it once, when it checks that the store can keep it."""

    source: str
    delivery_id: str
    kind: str
    payload_json: str
    received_at: datetime


class UnknownProjectError(LookupError):
    """A write named a project this store has never registered."""

    def __init__(self, key: str) -> None:
        super().__init__(f"unknown project {key!r}: it is not registered in this store")
        self.key = key


def alembic_config(connection: Connection) -> Config:
    """Alembic configuration built in code: no ``alembic.ini``, independent of the cwd.

    The migrations are located as package data of ``gates.store``, so this works the same from a
    checkout and from an installed wheel.
    """
    config = Config()
    config.set_main_option("script_location", "gates.store:migrations")
    config.attributes["connection"] = connection
    return config


def _now() -> datetime:
    return datetime.now(UTC)


_SQLITE_WRITERS: dict[str, threading.RLock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


def _sqlite_writer(url: URL) -> threading.RLock:
    """One lock per SQLite file for this process's writers.

    SQLite lets one writer in at a time; a writer that finds the file locked sleeps in steps of
    up to 100 ms before it looks again. Writers of the same process (the receiver and the
    decisions of ``phasegate serve``, the threads of a flow run) queue on this lock instead and
    go in the moment the previous one commits. Other processes still meet the busy timeout.
    """
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(str(url), threading.RLock())


def _pin_sqlite_path(url: URL) -> URL:
    """Resolve a relative SQLite path against today's working directory.

    The pool opens connections later, possibly after a chdir (Prefect's pull steps do one), and
    each must open the same file rather than create a new empty one.
    """
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    return url.set(database=os.path.abspath(database))


def _configure_sqlite(engine: Engine) -> None:
    """Make a SQLite file safe to share between a receiver and flow processes.

    WAL lets readers run while one process writes. Taking over BEGIN from the sqlite3 driver
    (which otherwise defers it to the first write) lets writing transactions begin IMMEDIATE:
    they queue for the write lock up front, waiting up to the busy timeout, instead of failing
    with "database is locked" when a read turns into a write.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        _enable_wal(dbapi_connection, SQLITE_BUSY_TIMEOUT_S)
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _enable_wal(dbapi_connection: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL, waiting out other connections like the busy timeout would.

    Converting a file that is not WAL yet needs an exclusive lock, and SQLite reports "database
    is locked" at once, without its busy handler, while another connection holds a write lock
    (two processes migrating a new file at the same time). Once the file is WAL the pragma is a
    no-op that never waits.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.001
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class Store:
    """Projects, evaluations, decisions, the event inbox, the side-effect outbox and the audit log.

    All datetimes go in and come out timezone-aware UTC; naive ones are refused.
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.url = _pin_sqlite_path(self.url)
            self.engine = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
            _configure_sqlite(self.engine)
            self._writer: threading.RLock | None = _sqlite_writer(self.url)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True)
            self._writer = None
        self._batch = threading.local()  # this thread's open batch session (see :meth:`batch`)

    def migrate(self) -> None:
        """Bring the schema to the newest migration; safe when several processes start at once."""
        with self.engine.connect() as connection:
            connection.execution_options(**{_WRITE: True})
            with connection.begin():
                self._serialise(connection, _MIGRATE_LOCK)
                command.upgrade(alembic_config(connection), "head")

    def dispose(self) -> None:
        """Close pooled connections (a SQLite file can then be removed, a PG schema dropped)."""
        self.engine.dispose()

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make what this thread writes (and reads) until the block ends one transaction.

        One commit instead of one per row: on SQLite that is one disk flush and one turn at the
        write lock for, say, everything a decision records (the evaluation, the move, the side
        effects), instead of one each. Each write inside is a savepoint, so one that fails is
        undone alone and the rest still commits. Keep the block to the writes: the write lock
        is held until it ends, and the receiver waits for it.

        SQLite only: there the batch holds the one write lock from its start, so it cannot
        deadlock. PostgreSQL commits cheaply and locks rows, and a long transaction holding the
        audit lock while it waits for a row could deadlock with a short one: each write stays
        its own transaction there.
        """
        if not self.is_sqlite or getattr(self._batch, "session", None) is not None:
            yield
            return
        with self._transaction(write=True) as session:
            self._batch.session = session
            try:
                yield
            finally:
                self._batch.session = None

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Session]:
        if (outer := getattr(self._batch, "session", None)) is not None:
            with outer.begin_nested():
                yield outer
        elif write and self._writer is not None:
            with self._writer, self._session(write=True) as session:
                yield session
        else:
            with self._session(write=write) as session:
                yield session

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            # The first connection use begins the transaction, so the mode must be set here.
            session.connection(execution_options={_WRITE: write})
            yield session

    def _serialise(self, connection: Connection, key: int) -> None:
        """Hold a lock until the transaction ends.

        Only PostgreSQL needs it: a SQLite writer already holds the whole file since BEGIN
        IMMEDIATE.
        """
        if not self.is_sqlite:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def _create_once(
        self,
        find: Callable[[Session], T | None],
        create: Callable[[Session], T],
        revise: Callable[[Session, T], bool] | None = None,
    ) -> tuple[T, bool]:
        """Create a row unless its unique key exists; return it and whether anything was written.

        An existing row goes to ``revise`` (when given) in the same write transaction, locked if
        ``find`` locks it; it updates the row if it must and says whether it did.

        The look-up spares the common repeat an insert. A concurrent creator can still slip in
        between, and then the unique constraint fails our insert. The second pass finds the
        winner's row and revises it in turn, so our change is applied after theirs, not lost.
        """

        def existing_row(session: Session, row: T) -> tuple[T, bool]:
            return row, revise is not None and revise(session, row)

        try:
            with self._transaction(write=True) as session:
                existing = find(session)
                if existing is not None:
                    return existing_row(session, existing)
                return create(session), True
        except IntegrityError:
            with self._transaction(write=revise is not None) as session:
                existing = find(session)
                if existing is None:
                    raise
                return existing_row(session, existing)

    @staticmethod
    def _project(session: Session, key: str, *, lock: bool = False) -> ProjectRow:
        statement = select(ProjectRow).where(ProjectRow.key == key)
        if lock:
            statement = statement.with_for_update()
        project = session.exec(statement).first()
        if project is None:
            raise UnknownProjectError(key)
        return project

    @staticmethod
    def _row(session: Session, model: type[T], row_id: int, *, lock: bool = False) -> T:
        row = session.get(model, row_id, with_for_update=lock)
        if row is None:
            raise LookupError(f"no {model.__tablename__} row with id {row_id}")  # type: ignore[attr-defined]
        return row

    # -- projects and transitions -----------------------------------------------------------

    def ensure_project(self, key: str, initial_phase: str, at: datetime) -> ProjectRow:
        """Register a project on first sight; later calls return it unchanged.

        Its first phase is recorded as an ``init`` transition, so the history of every project
        starts with how it entered the lifecycle.
        """

        def create(session: Session) -> ProjectRow:
            project = ProjectRow(key=key, phase=initial_phase, created_at=at, updated_at=at)
            session.add(project)
            session.flush()
            self._move(
                session,
                project,
                to_phase=initial_phase,
                kind="init",
                reason="project registered",
                evaluation_id=None,
                at=at,
                from_phase=None,
            )
            return project

        if (known := self.project(key)) is not None:  # the common case: no write lock needed
            return known
        project, _ = self._create_once(lambda session: session.get(ProjectRow, key), create)
        return project

    def project(self, key: str) -> ProjectRow | None:
        """The project and its current phase, or None if it was never registered."""
        with self._transaction(write=False) as session:
            return session.get(ProjectRow, key)

    def projects(self) -> list[ProjectRow]:
        """Every registered project, by key."""
        with self._transaction(write=False) as session:
            return list(session.exec(select(ProjectRow).order_by(col(ProjectRow.key))))

    def transition(
        self,
        *,
        project: str,
        to_phase: str,
        kind: TransitionKind,
        reason: str,
        evaluation_id: int | None,
        at: datetime,
        rule: str | None = None,
        expected_phase: str | None = None,
        effects: Iterable[Effect] = (),
    ) -> TransitionRow | None:
        """Move a project to another phase; a regression names the ``rule`` that caused it.

        The phase, the history row and the audit row commit together, and the project row is
        locked meanwhile. ``expected_phase`` makes the move a compare-and-set: it is the phase
        the caller decided from, and if the project is no longer there (another flow moved it,
        a stale decision was replayed) nothing is written and None is returned, so two flows
        deciding at once cannot both move it, and an old decision cannot move it backwards
        under the name "advance". Without it the move is unconditional (an administrative one).

        ``effects`` (kind, idempotency key, payload) are what to tell about the move: queued
        in the same transaction, so they exist exactly when the move does -- never for a move
        another flow won, never twice for one a killed process is deciding again.
        """
        if rule is not None and kind != "regress":
            raise ValueError(f"only a regression has a rule; a {kind} transition got {rule!r}")
        with self._transaction(write=True) as session:
            row = self._project(session, project, lock=True)
            if expected_phase is not None and row.phase != expected_phase:
                return None
            for effect_kind, key, payload in effects:
                self._enqueue(session, effect_kind, key, payload)
            return self._move(
                session,
                row,
                to_phase=to_phase,
                kind=kind,
                reason=reason,
                evaluation_id=evaluation_id,
                at=at,
                from_phase=row.phase,
                rule=rule,
            )

    def _move(
        self,
        session: Session,
        project: ProjectRow,
        *,
        to_phase: str,
        kind: TransitionKind,
        reason: str,
        evaluation_id: int | None,
        at: datetime,
        from_phase: str | None,
        rule: str | None = None,
    ) -> TransitionRow:
        project.phase = to_phase
        project.updated_at = at
        transition = TransitionRow(
            project=project.key,
            from_phase=from_phase,
            to_phase=to_phase,
            kind=kind,
            reason=reason,
            evaluation_id=evaluation_id,
            rule=rule,
            at=at,
        )
        session.add(transition)
        session.flush()
        self._append_audit(
            session,
            actor=ENGINE_ACTOR,
            action=f"transition.{kind}",
            subject=project.key,
            data={
                "transition_id": transition.id,
                "from_phase": from_phase,
                "to_phase": to_phase,
                "reason": reason,
                "evaluation_id": evaluation_id,
                "rule": rule,
            },
            at=at,
        )
        return transition

    def transitions(self, project: str) -> list[TransitionRow]:
        """The project's phase history, oldest first."""
        statement = (
            select(TransitionRow)
            .where(TransitionRow.project == project)
            .order_by(col(TransitionRow.at), col(TransitionRow.id))
        )
        with self._transaction(write=False) as session:
            return list(session.exec(statement))

    def last_regressions(self, project: str) -> dict[str, datetime]:
        """When each regression rule last sent the project back.

        A rule's hold-down reads this, so a flapping alert does not bounce the project between
        phases or page its owners on every flap.
        """
        statement = (
            select(TransitionRow.rule, func.max(col(TransitionRow.at)))
            .where(TransitionRow.project == project, col(TransitionRow.rule).is_not(None))
            .group_by(col(TransitionRow.rule))
        )
        with self._transaction(write=False) as session:
            return {rule: at for rule, at in session.exec(statement) if rule is not None}

    # -- evaluations ------------------------------------------------------------------------

    def record_evaluation(
        self,
        *,
        project: str,
        gate: str,
        status: str,
        mode: str,
        policy_hash: str,
        evidence_digest: str,
        gate_digest: str,
        result: Mapping[str, Any],
        at: datetime,
        pull_request: int | None = None,
    ) -> EvaluationRow:
        """Keep a gate's result with the policy and evidence it came from, so it can be explained
        and reproduced later; ``pull_request``: the PR it was checked on, if any."""
        with self._transaction(write=True) as session:
            self._project(session, project)
            evaluation = EvaluationRow(
                project=project,
                gate=gate,
                status=status,
                mode=mode,
                policy_hash=policy_hash,
                evidence_digest=evidence_digest,
                gate_digest=gate_digest,
                result=jsonable(result),
                at=at,
                pull_request=pull_request,
            )
            session.add(evaluation)
            session.flush()
            self._append_audit(
                session,
                actor=ENGINE_ACTOR,
                action="evaluation.recorded",
                subject=f"{project}/{gate}",
                data={
                    "evaluation_id": evaluation.id,
                    "status": status,
                    "mode": mode,
                    "policy_hash": policy_hash,
                    "evidence_digest": evidence_digest,
                    "gate_digest": gate_digest,
                },
                at=at,
            )
            return evaluation

    def last_evaluations(self, project: str) -> dict[str, EvaluationRow]:
        """The latest evaluation of each gate of a project: the project's current standing."""
        return {row.gate: row for row in self._latest(project, col(EvaluationRow.gate))}

    def latest_evaluations(self, project: str) -> dict[tuple[str, int | None], EvaluationRow]:
        """The latest evaluation of each gate of a project per pull request it was checked on
        (None: the project itself): what an approval request on a PR is compared with, so
        that evaluating the project does not make the PR's request look out of date."""
        rows = self._latest(project, col(EvaluationRow.gate), col(EvaluationRow.pull_request))
        return {(row.gate, row.pull_request): row for row in rows}

    def _latest(self, project: str, *partition: Any) -> list[EvaluationRow]:
        ranked = (
            select(
                col(EvaluationRow.id).label("id"),
                func.row_number()
                .over(
                    partition_by=partition,
                    order_by=(col(EvaluationRow.at).desc(), col(EvaluationRow.id).desc()),
                )
                .label("rank"),
            )
            .where(EvaluationRow.project == project)
            .subquery()
        )
        statement = (
            select(EvaluationRow)
            .join(ranked, ranked.c.id == EvaluationRow.id)
            .where(ranked.c.rank == 1)
        )
        with self._transaction(write=False) as session:
            return list(session.exec(statement))

    def evaluations(
        self, project: str, gate: str | None = None, limit: int = 100
    ) -> list[EvaluationRow]:
        """A project's evaluations, newest first, optionally of one gate."""
        statement = select(EvaluationRow).where(EvaluationRow.project == project)
        if gate is not None:
            statement = statement.where(EvaluationRow.gate == gate)
        statement = statement.order_by(
            col(EvaluationRow.at).desc(), col(EvaluationRow.id).desc()
        ).limit(limit)
        with self._transaction(write=False) as session:
            return list(session.exec(statement))

    def first_evaluated(
        self, project: str, gate: str, gate_digest: str, status: str
    ) -> datetime | None:
        """When a gate first had ``status`` on this gate digest (when an approval request on
        that evidence opened), however many re-evaluations followed."""
        statement = select(func.min(EvaluationRow.at)).where(
            EvaluationRow.project == project,
            EvaluationRow.gate == gate,
            EvaluationRow.gate_digest == gate_digest,
            EvaluationRow.status == status,
        )
        with self._transaction(write=False) as session:
            first = session.exec(statement).first()
        return as_utc(first) if first is not None else None

    # -- approvals and waivers --------------------------------------------------------------

    def add_approval(
        self,
        *,
        project: str,
        gate: str,
        person: str,
        decision: Decision,
        digest: str | None,
        reason: str | None,
        source: str,
        at: datetime,
    ) -> tuple[ApprovalRow, bool]:
        """Record a person's decision on the evidence ``digest``; return the row and whether it
        was written.

        A repeated click or redelivered action finds the same decision stored and writes nothing
        (False), so the audit log and the Slack thread see it once. The opposite decision is a
        change of mind: it replaces the stored one (True) and the audit log keeps both as
        ``approval.changed``. A decision made before the stored one (``at`` earlier: two clicks
        processed out of order) does not override it and writes nothing. The same decision
        given again after the project was sent back (a regression voids the decisions given
        before it) is a new one: it takes the new time (True, audited as ``approval.renewed``).
        """
        stored_digest = NO_DIGEST if digest is None else digest

        def find(session: Session) -> ApprovalRow | None:
            statement = (
                select(ApprovalRow)
                .where(
                    ApprovalRow.project == project,
                    ApprovalRow.gate == gate,
                    ApprovalRow.person == person,
                    ApprovalRow.digest == stored_digest,
                )
                .with_for_update()
            )
            return session.exec(statement).first()

        def create(session: Session) -> ApprovalRow:
            self._project(session, project)
            approval = ApprovalRow(
                project=project,
                gate=gate,
                person=person,
                decision=decision,
                digest=stored_digest,
                reason=reason,
                source=source,
                at=at,
            )
            session.add(approval)
            session.flush()
            self._append_audit(
                session,
                actor=person,
                action=f"approval.{decision}",
                subject=f"{project}/{gate}",
                data={
                    "approval_id": approval.id,
                    "digest": digest,
                    "reason": reason,
                    "source": source,
                },
                at=at,
            )
            return approval

        def revise(session: Session, approval: ApprovalRow) -> bool:
            if as_utc(at) < approval.at:
                return False
            if approval.decision == decision:
                return renew(session, approval)
            previous = approval.decision
            approval.decision = decision
            approval.reason = reason
            approval.source = source
            approval.at = at
            self._append_audit(
                session,
                actor=person,
                action="approval.changed",
                subject=f"{project}/{gate}",
                data={
                    "approval_id": approval.id,
                    "from": previous,
                    "to": decision,
                    "digest": digest,
                    "reason": reason,
                    "source": source,
                },
                at=at,
            )
            return True

        def renew(session: Session, approval: ApprovalRow) -> bool:
            sent_back = session.exec(
                select(func.max(col(TransitionRow.at))).where(
                    TransitionRow.project == project, TransitionRow.kind == "regress"
                )
            ).one()
            if sent_back is None or not approval.at < as_utc(sent_back) <= as_utc(at):
                return False
            approval.reason, approval.source, approval.at = reason, source, at
            self._append_audit(
                session,
                actor=person,
                action="approval.renewed",
                subject=f"{project}/{gate}",
                data={
                    "approval_id": approval.id,
                    "decision": decision,
                    "digest": digest,
                    "reason": reason,
                    "source": source,
                    "sent_back_at": sent_back,
                },
                at=at,
            )
            return True

        return self._create_once(find, create, revise)

    def approvals(self, project: str, gate: str) -> list[Approval]:
        """A gate's decisions, oldest first, in the form the evaluator takes."""
        statement = (
            select(ApprovalRow)
            .where(ApprovalRow.project == project, ApprovalRow.gate == gate)
            .order_by(col(ApprovalRow.at), col(ApprovalRow.id))
        )
        with self._transaction(write=False) as session:
            rows = list(session.exec(statement))
        return [
            Approval(
                person=row.person,
                decision=row.decision,  # type: ignore[arg-type]  # constrained on the way in
                digest=None if row.digest == NO_DIGEST else row.digest,
                at=row.at,
                reason=row.reason,
            )
            for row in rows
        ]

    def add_waiver(
        self,
        *,
        project: str,
        gate: str,
        check_id: str,
        person: str,
        reason: str,
        at: datetime,
        expires_at: datetime,
    ) -> tuple[WaiverRow, bool]:
        """Record that a person let a failing check pass until ``expires_at``, and why; return
        the row and whether it was written.

        The same grant again (a scenario recorded twice, a retried command) finds the stored
        row and writes nothing, so the audit log holds each grant once. The project row is
        locked meanwhile, so two identical grants at once cannot both be written.
        """
        with self._transaction(write=True) as session:
            self._project(session, project, lock=True)
            same = session.exec(
                select(WaiverRow).where(
                    WaiverRow.project == project,
                    WaiverRow.gate == gate,
                    WaiverRow.check_id == check_id,
                    WaiverRow.person == person,
                    WaiverRow.reason == reason,
                    col(WaiverRow.at) == as_utc(at),
                    col(WaiverRow.expires_at) == as_utc(expires_at),
                )
            ).first()
            if same is not None:
                return same, False
            waiver = WaiverRow(
                project=project,
                gate=gate,
                check_id=check_id,
                person=person,
                reason=reason,
                at=at,
                expires_at=expires_at,
            )
            session.add(waiver)
            session.flush()
            self._append_audit(
                session,
                actor=person,
                action="waiver.granted",
                subject=f"{project}/{gate}",
                data={
                    "waiver_id": waiver.id,
                    "check_id": check_id,
                    "reason": reason,
                    "expires_at": expires_at,
                },
                at=at,
            )
            return waiver, True

    def waivers_in_force(self, now: datetime, project: str | None = None) -> list[WaiverRow]:
        """Waivers whose time includes ``now`` (of one project, or all), soonest to end first:
        what someone asks "what is waived right now?" about."""
        statement = select(WaiverRow).where(
            col(WaiverRow.at) <= as_utc(now), col(WaiverRow.expires_at) > as_utc(now)
        )
        if project is not None:
            statement = statement.where(WaiverRow.project == project)
        statement = statement.order_by(col(WaiverRow.expires_at), col(WaiverRow.id))
        with self._transaction(write=False) as session:
            return list(session.exec(statement))

    def waivers(self, project: str, gate: str) -> list[Waiver]:
        """A gate's waivers, expired ones included: the evaluator decides with its own ``now``."""
        statement = (
            select(WaiverRow)
            .where(WaiverRow.project == project, WaiverRow.gate == gate)
            .order_by(col(WaiverRow.at), col(WaiverRow.id))
        )
        with self._transaction(write=False) as session:
            rows = list(session.exec(statement))
        return [
            Waiver(
                check=row.check_id,
                person=row.person,
                reason=row.reason,
                at=row.at,
                expires_at=row.expires_at,
            )
            for row in rows
        ]

    # -- inbox ------------------------------------------------------------------------------

    def add_inbox_event(
        self,
        *,
        source: str,
        delivery_id: str,
        kind: str,
        payload: Mapping[str, Any],
        received_at: datetime,
    ) -> tuple[InboxEventRow, bool]:
        """Store a received event once per sender delivery id; a redelivery returns the stored
        row and False, so the receiver can acknowledge it without acting twice."""
        event = InboxEvent(source, delivery_id, kind, stored_json(payload), received_at)
        [(event_id, created)] = self.add_inbox_events([event])
        row = self.inbox_event(event_id)
        assert row is not None  # inbox events are never deleted
        return row, created

    def add_inbox_events(self, events: list[InboxEvent]) -> list[tuple[int, bool]]:
        """Store received events in one transaction (see :meth:`add_inbox_event`): the id of
        each and whether it is new.

        This is the receiver's path, where every request waits for it, so it is lean. One
        commit for many: a receiver under load writes what arrived while the previous write
        committed together (group commit), instead of queueing every request for the write
        lock and a disk flush of its own. ``INSERT ... ON CONFLICT DO NOTHING`` makes a
        concurrent or repeated delivery a no-op without an error that would undo the others.
        A fixed SQL text is compiled once.
        """
        statement = _ADD_INBOX_SQLITE if self.is_sqlite else _ADD_INBOX_POSTGRESQL
        stored: list[tuple[int, bool]] = []
        with self._transaction(write=True) as session:
            for event in events:
                values = {
                    "source": event.source,
                    "delivery_id": event.delivery_id,
                    "kind": event.kind,
                    "payload": event.payload_json,
                    "received_at": event.received_at,
                }
                new_id = session.execute(statement, values).scalar()
                if new_id is None:  # delivered before
                    existing = select(InboxEventRow.id).where(
                        InboxEventRow.source == event.source,
                        InboxEventRow.delivery_id == event.delivery_id,
                    )
                    stored.append((session.exec(existing).one(), False))
                else:
                    stored.append((new_id, True))
        return stored

    def inbox_event(self, event_id: int) -> InboxEventRow | None:
        """One inbox event by id, or None."""
        with self._transaction(write=False) as session:
            return session.get(InboxEventRow, event_id)

    def inbox_events(
        self,
        status: InboxStatus | None = None,
        limit: int = 100,
        *,
        source: str | None = None,
        newest: bool = False,
        since: datetime | None = None,
    ) -> list[InboxEventRow]:
        """Inbox events in arrival order, optionally only those with one status or one sender,
        or received since a time (what a monitoring window looks at); ``newest`` keeps the
        latest ``limit`` (still listed oldest first), as an operator wants."""
        statement = select(InboxEventRow)
        if status is not None:
            statement = statement.where(InboxEventRow.status == status)
        if source is not None:
            statement = statement.where(InboxEventRow.source == source)
        if since is not None:
            statement = statement.where(col(InboxEventRow.received_at) >= as_utc(since))
        order = col(InboxEventRow.id).desc() if newest else col(InboxEventRow.id)
        statement = statement.order_by(order).limit(limit)
        with self._transaction(write=False) as session:
            rows = list(session.exec(statement))
        return rows[::-1] if newest else rows

    def inbox_counts(self) -> dict[str, int]:
        """How many inbox events have each status (statuses with none are left out).

        Counted by the database, so the health check stays cheap however long the inbox grows.
        """
        statement = select(InboxEventRow.status, func.count()).group_by(col(InboxEventRow.status))
        with self._transaction(write=False) as session:
            return {status: count for status, count in session.exec(statement)}

    def claim_inbox_events(
        self,
        limit: int,
        *,
        reclaim_after: timedelta | None = None,
        now: datetime | None = None,
        max_attempts: int | None = None,
    ) -> list[InboxEventRow]:
        """Take up to ``limit`` pending events for processing, oldest first, each for one claimer
        only (see :meth:`_claim`); every claim counts as an attempt.

        An event left ``processing`` that has had ``max_attempts`` attempts already is not
        taken again but marked failed with why: an event that makes its worker die would
        otherwise be retried forever, and hold up every batch it lands in.
        """
        now = now or _now()
        with self._transaction(write=True) as session:
            if reclaim_after is not None and max_attempts is not None:
                self._give_up_stale(
                    session, InboxEventRow, max_attempts, stale_before=now - reclaim_after
                )
            rows = self._claim(session, InboxEventRow, limit, reclaim_after=reclaim_after, now=now)
            for row in rows:
                row.attempts += 1
            return rows

    @staticmethod
    def _give_up_stale(
        session: Session, table: type[Claimable], max_attempts: int, *, stale_before: datetime
    ) -> None:
        """Fail, with why, the rows left ``processing`` (claimed before ``stale_before``) whose
        dead worker had their last allowed attempt: a row that makes its worker die would
        otherwise be taken over and retried forever.

        The inbox counts an attempt when it is claimed; the outbox when it ends, so there the
        dead worker's attempt is counted here (as a takeover would count it).
        """
        outbox = table is OutboxRow
        spent = col(table.attempts) + 1 if outbox else col(table.attempts)
        statement = (
            select(table)
            .where(
                col(table.status) == "processing",
                col(table.claimed_at) <= stale_before,
                spent >= max_attempts,
            )
            .with_for_update(skip_locked=True)
        )
        now = _now()
        for row in session.exec(statement):
            row.status = "failed"
            if isinstance(row, OutboxRow):
                row.attempts += 1
                row.claimed_at = None
                row.last_error = Store._gave_up(row.attempts, row.last_error)
            else:
                row.error = Store._gave_up(row.attempts, row.error)
                row.processed_at = now

    @staticmethod
    def _gave_up(attempts: int, last_error: str | None) -> str:
        last = last_error or "none recorded: the worker stopped before it finished (crashed?)"
        return f"gave up after {attempts} attempts: {last}"

    def renew_inbox_claims(self, event_ids: Iterable[int], now: datetime | None = None) -> int:
        """Mark claimed events as still being worked on, so that a long batch is not reclaimed
        (and processed a second time) while its worker is alive; returns how many were."""
        ids = list(event_ids)
        return self._renew(InboxEventRow, col(InboxEventRow.id).in_(ids), now) if ids else 0

    def _renew(
        self, table: type[Claimable], claimed: ColumnElement[bool], now: datetime | None
    ) -> int:
        """Move the claims of the ``claimed`` rows still ``processing`` to ``now``."""
        statement = (
            update(table)
            .where(claimed, col(table.status) == "processing")
            .values(claimed_at=now or _now())
            .execution_options(synchronize_session=False)
        )
        with self._transaction(write=True) as session:
            return session.exec(statement).rowcount  # type: ignore[call-overload]

    @staticmethod
    def _claim(
        session: Session,
        table: type[Claimable],
        limit: int,
        *,
        reclaim_after: timedelta | None,
        now: datetime,
        due: ColumnElement[bool] | None = None,
        count_dead: bool = False,
        after: int | None = None,
    ) -> list[Claimable]:
        """Move up to ``limit`` claimable rows to ``processing`` at ``now``, oldest first.

        Claimable are ``pending`` rows that are ``due`` and, with ``reclaim_after``, rows left
        ``processing`` longer than that (their worker died; with ``count_dead`` that death
        counts as an attempt, for tables that count attempts when they finish); with ``after``,
        only those with a higher id. Each row goes to one claimer only: PostgreSQL claimers
        skip rows another one has locked (``FOR UPDATE SKIP LOCKED``) instead of waiting for
        them, SQLite claimers take turns on the write lock.
        """
        claimable = and_(col(table.status) == "pending", true() if due is None else due)
        if reclaim_after is not None:
            claimable = or_(
                claimable,
                and_(
                    col(table.status) == "processing", col(table.claimed_at) <= now - reclaim_after
                ),
            )
        if after is not None:
            claimable = and_(col(table.id) > after, claimable)
        statement = (
            select(table)
            .where(claimable)
            .order_by(col(table.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list(session.exec(statement))
        for row in rows:
            if count_dead and row.status == "processing":
                row.attempts += 1  # the dead worker's attempt: it may have done its part
                row.last_error = "its worker stopped before finishing it (claim taken over)"
            row.status = "processing"
            row.claimed_at = now
        return rows

    def retry_failed_inbox(self, max_attempts: int) -> int:
        """Hand failed events with fewer than ``max_attempts`` attempts back for processing.

        Their last error stays on the row until the next attempt ends, so a listing still says
        why they failed. Returns how many went back.
        """
        statement = (
            update(InboxEventRow)
            .where(
                col(InboxEventRow.status) == "failed",
                col(InboxEventRow.attempts) < max_attempts,
            )
            .values(status="pending")
            .execution_options(synchronize_session=False)
        )
        with self._transaction(write=True) as session:
            return session.exec(statement).rowcount

    def finish_inbox_event(
        self, event_id: int, status: InboxStatus, error: str | None = None
    ) -> InboxEventRow:
        """Record how processing ended: ``done``, ``ignored`` (nothing to do), ``failed`` (with
        the error), or ``pending`` to hand the event back for another attempt."""
        with self._transaction(write=True) as session:
            row = self._row(session, InboxEventRow, event_id)
            row.status = status
            row.error = error
            row.processed_at = _now()
            return row

    def finish_inbox_events(
        self, event_ids: Iterable[int], status: InboxStatus, error: str | None = None
    ) -> int:
        """The same for many events in one transaction: a drained batch of hundreds of events
        is finished with one commit, not hundreds."""
        ids = list(event_ids)
        if not ids:
            return 0
        statement = (
            update(InboxEventRow)
            .where(col(InboxEventRow.id).in_(ids))
            .values(status=status, error=error, processed_at=_now())
        )
        with self._transaction(write=True) as session:
            return session.exec(statement).rowcount  # type: ignore[call-overload]

    # -- outbox -----------------------------------------------------------------------------

    def enqueue_outbox(
        self,
        *,
        idempotency_key: str,
        kind: str,
        payload: Mapping[str, Any],
        reopen_failed: bool = False,
    ) -> tuple[OutboxRow, bool]:
        """Queue a side effect once per idempotency key; a retried flow gets the queued row (and
        False) back instead of queueing the effect again.

        ``reopen_failed``: a row of this key that failed for good is handed back for another
        attempt (True): the caller knows the effect is still wanted and the cause may be gone
        (the Slack bot was invited to the channel, Slack is back after an outage)."""

        def find(session: Session) -> OutboxRow | None:
            statement = (
                select(OutboxRow)
                .where(OutboxRow.idempotency_key == idempotency_key)
                .with_for_update()
            )
            return session.exec(statement).first()

        def reopen(session: Session, row: OutboxRow) -> bool:
            if not reopen_failed or row.status != "failed":
                return False
            row.status = "pending"
            row.not_before = None
            return True

        def create(session: Session) -> OutboxRow:
            row = OutboxRow(
                idempotency_key=idempotency_key,
                kind=kind,
                payload=jsonable(payload),
                created_at=_now(),
            )
            session.add(row)
            session.flush()
            return row

        return self._create_once(find, create, reopen)

    def _enqueue(
        self, session: Session, effect_kind: str, key: str, payload: Mapping[str, Any]
    ) -> None:
        """Queue a side effect within ``session`` unless its key is queued already; a key a
        concurrent writer queued first is a no-op, not an error that would undo the session."""
        row = OutboxRow(
            idempotency_key=key, kind=effect_kind, payload=jsonable(payload), created_at=_now()
        )
        insert = sqlite_insert if self.is_sqlite else postgresql_insert
        statement = insert(OutboxRow.__table__).values(**row.model_dump(exclude={"id"}))
        session.execute(statement.on_conflict_do_nothing(index_elements=["idempotency_key"]))

    def outbox_rows(
        self, status: str | None = None, limit: int = 100, *, newest: bool = False
    ) -> list[OutboxRow]:
        """Side effects, oldest first, optionally only those with one status; ``newest`` keeps
        the latest ``limit`` (still listed oldest first), as an operator looking for what
        failed wants."""
        statement = select(OutboxRow)
        if status is not None:
            statement = statement.where(OutboxRow.status == status)
        order = col(OutboxRow.id).desc() if newest else col(OutboxRow.id)
        with self._transaction(write=False) as session:
            rows = list(session.exec(statement.order_by(order).limit(limit)))
        return rows[::-1] if newest else rows

    def latest_outbox(self, key_prefix: str) -> OutboxRow | None:
        """The side effect queued last among those whose keys share a prefix (the states of
        one check run, label or Slack message): what that object should show now, whichever
        row is performed; what a pull request was told last."""
        statement = (
            select(OutboxRow)
            .where(col(OutboxRow.idempotency_key).startswith(key_prefix, autoescape=True))
            .order_by(col(OutboxRow.id).desc())
            .limit(1)
        )
        with self._transaction(write=False) as session:
            return session.exec(statement).first()

    def outbox_external_id(self, key_prefix: str) -> str | None:
        """What an earlier, performed side effect made (a check run id...) for the same thing:
        keys share a prefix when they are about the same object, so an update finds it."""
        statement = (
            select(OutboxRow.external_id)
            .where(
                col(OutboxRow.idempotency_key).startswith(key_prefix, autoescape=True),
                col(OutboxRow.external_id).is_not(None),
            )
            .order_by(col(OutboxRow.id).desc())
            .limit(1)
        )
        with self._transaction(write=False) as session:
            return session.exec(statement).first()

    def claim_outbox(
        self,
        limit: int,
        *,
        reclaim_after: timedelta | None = None,
        now: datetime | None = None,
        max_attempts: int | None = None,
        after: int | None = None,
    ) -> list[OutboxRow]:
        """Take up to ``limit`` due side effects to perform, oldest first, each for one worker
        only (see :meth:`_claim`).

        Due are ``pending`` rows whose ``not_before`` has passed (or is unset). Attempts are
        counted when they finish (:meth:`finish_outbox`), and when a dead worker's claim is
        taken over: the handler then knows an earlier attempt may have done its part. A row
        whose dead worker had its ``max_attempts``-th attempt is not taken over but failed
        ("gave up after N attempts: <last error>"), as the inbox does. ``after``: only rows
        with a higher id (a run that goes through the outbox once, in order).

        A claim is the row's ``attempts`` as returned here: every takeover and every finish
        changes it, so the worker still holds its claim while the row is ``processing`` with
        that count (see :meth:`renew_outbox_claims`, :meth:`finish_outbox`).
        """
        now = now or _now()
        due = or_(col(OutboxRow.not_before).is_(None), col(OutboxRow.not_before) <= now)
        with self._transaction(write=True) as session:
            if reclaim_after is not None and max_attempts is not None:
                self._give_up_stale(
                    session, OutboxRow, max_attempts, stale_before=now - reclaim_after
                )
            return self._claim(
                session,
                OutboxRow,
                limit,
                reclaim_after=reclaim_after,
                now=now,
                due=due,
                count_dead=True,
                after=after,
            )

    def renew_outbox_claims(self, claims: Mapping[int, int], now: datetime | None = None) -> int:
        """Mark side effects still held (row id -> its ``attempts`` when claimed) as being
        worked on, so a long delivery is not taken over while its worker is alive; returns how
        many were. A claim taken over meanwhile is not renewed: 0 for one row means its worker
        lost it, and must leave the row to the one that took it."""
        if not claims:
            return 0
        held = tuple_(col(OutboxRow.id), col(OutboxRow.attempts)).in_(list(claims.items()))
        return self._renew(OutboxRow, held, now)

    def finish_outbox(
        self,
        outbox_id: int,
        status: OutboxOutcome,
        external_id: str | None = None,
        error: str | None = None,
        retry_after: timedelta | None = None,
        *,
        claim: int | None = None,
    ) -> OutboxRow | None:
        """Record an attempt and end its claim: ``done``, ``failed`` for good, or ``pending`` to
        be claimed again ``retry_after`` from now (at once if None; ignored for other statuses).

        Pass ``external_id`` as soon as the outside object exists (even on a retry) so the next
        attempt updates it rather than creating another.

        ``claim`` (the row's ``attempts`` when it was claimed): finish only if that claim is
        still held. If another worker took the row over, its attempt is the one to finish:
        nothing changes but ``external_id`` (kept if none is recorded yet, so that what this
        attempt made is updated rather than made again), and None is returned.
        """
        if status not in get_args(OutboxOutcome):
            raise ValueError(f"an outbox attempt ends done, failed or pending, not {status!r}")
        now = _now()
        with self._transaction(write=True) as session:
            row = self._row(session, OutboxRow, outbox_id, lock=claim is not None)
            if claim is not None and (row.status, row.attempts) != ("processing", claim):
                if row.external_id is None and external_id is not None:
                    row.external_id = external_id
                return None
            row.status = status
            row.attempts += 1
            row.last_error = error
            row.claimed_at = None
            if external_id is not None:
                row.external_id = external_id
            if status == "pending":
                row.not_before = now + (retry_after or timedelta(0))
            if status == "done":
                row.done_at = now
            return row

    # -- audit ------------------------------------------------------------------------------

    def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        data: Mapping[str, Any],
        at: datetime | None = None,
    ) -> AuditRow:
        """Append an entry to the hash-chained audit log."""
        with self._transaction(write=True) as session:
            return self._append_audit(
                session, actor=actor, action=action, subject=subject, data=data, at=at or _now()
            )

    def _append_audit(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        subject: str,
        data: Mapping[str, Any],
        at: datetime,
    ) -> AuditRow:
        """Chain a row onto the current last one, inside the caller's transaction.

        The lock makes read-last-then-insert atomic across processes, so the chain never forks;
        it is taken last in every transaction and held only until its commit.
        """
        self._serialise(session.connection(), _AUDIT_LOCK)
        last_hash = session.exec(
            select(AuditRow.hash).order_by(col(AuditRow.id).desc()).limit(1)
        ).first()
        prev_hash = last_hash or GENESIS
        stored = jsonable(data)
        at = as_utc(at)
        row = AuditRow(
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            data=stored,
            prev_hash=prev_hash,
            hash=chain_hash(
                prev_hash=prev_hash, at=at, actor=actor, action=action, subject=subject, data=stored
            ),
        )
        session.add(row)
        session.flush()
        return row

    def audit_log(self, limit: int = 100) -> list[AuditRow]:
        """The newest audit entries, newest first."""
        statement = select(AuditRow).order_by(col(AuditRow.id).desc()).limit(limit)
        with self._transaction(write=False) as session:
            return list(session.exec(statement))

    def verify_audit(self) -> AuditReport:
        """Recompute the whole chain and name the first row that was altered or removed."""
        statement = select(AuditRow).order_by(col(AuditRow.id)).execution_options(yield_per=1000)
        with self._transaction(write=False) as session:
            return verify_chain(session.exec(statement))
