"""The store against real databases: a SQLite file always, PostgreSQL when
``PHASEGATE_TEST_POSTGRES_URL`` is set (``eval "$(.ci/postgres.sh)"`` provides one).

Each PostgreSQL test runs in a schema of its own, dropped afterwards, so tests stay independent.
Concurrency tests use one :class:`Store` per thread, each with its own engine and connections,
as separate processes would.
"""

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, delete, event, func, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, StatementError

from gates.records import Approval, Waiver
from gates.store import AuditRow, InboxEvent, OutboxRow, Store, UnknownProjectError
from gates.store.audit import GENESIS, chain_hash, jsonable, stored_json, verify_chain
from gates.store.tables import ALEMBIC_VERSION_TABLE, metadata

POSTGRES_ENV = "PHASEGATE_TEST_POSTGRES_URL"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

backends = [pytest.param("sqlite", id="sqlite")]
if os.environ.get(POSTGRES_ENV):
    backends.append(pytest.param("postgresql", id="postgresql"))


@pytest.fixture(params=backends)
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = make_url(os.environ[POSTGRES_ENV])
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def new_store(store_url: str) -> Iterator[Callable[[], Store]]:
    """Make stores on the test database, like separate processes would, and close them after."""
    stores: list[Store] = []

    def make() -> Store:
        stores.append(Store(store_url))
        return stores[-1]

    yield make
    for store in stores:
        store.dispose()


@pytest.fixture
def store(new_store: Callable[[], Store]) -> Store:
    migrated = new_store()
    migrated.migrate()
    return migrated


def run_concurrently(workers: list[Callable[[], object]]) -> list[object]:
    """Start the workers together and re-raise the first exception any of them hit."""
    barrier = threading.Barrier(len(workers))

    def start(worker: Callable[[], object]) -> object:
        barrier.wait()
        return worker()

    with ThreadPoolExecutor(len(workers)) as pool:
        futures = [pool.submit(start, worker) for worker in workers]
        return [future.result() for future in futures]


def add_audit_rows(store: Store, count: int) -> list[AuditRow]:
    return [
        store.audit(actor="alice", action="test.step", subject="p", data={"n": n}, at=T0)
        for n in range(count)
    ]


# -- schema -------------------------------------------------------------------------------------


def test_migrate_on_empty_database_matches_the_tables(new_store: Callable[[], Store]) -> None:
    store = new_store()
    assert inspect(store.engine).get_table_names() == []

    store.migrate()
    store.migrate()  # a second process starting up: nothing left to do

    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": ALEMBIC_VERSION_TABLE}
        )
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == "0002"
    assert set(inspect(store.engine).get_table_names()) == {
        *metadata.tables,
        ALEMBIC_VERSION_TABLE,
    }
    # compare_metadata ignores constraint names; later migrations alter constraints by name.
    assert migrated_constraint_names(store) == declared_constraint_names()


def declared_constraint_names() -> set[tuple[str, str]]:
    return {
        (table.name, str(item.name))
        for table in metadata.tables.values()
        for item in [*table.constraints, *table.indexes]
    }


def migrated_constraint_names(store: Store) -> set[tuple[str, str]]:
    inspector = inspect(store.engine)
    names = set()
    for table in metadata.tables:
        found = [
            inspector.get_pk_constraint(table),
            *inspector.get_foreign_keys(table),
            *inspector.get_unique_constraints(table),
            *inspector.get_indexes(table),
        ]
        names |= {(table, item["name"]) for item in found}
    return names


def test_concurrent_migrations_do_not_collide(new_store: Callable[[], Store]) -> None:
    stores = [new_store(), new_store()]
    run_concurrently([store.migrate for store in stores])
    assert stores[0].ensure_project("p", "framing", T0).phase == "framing"


def test_relative_sqlite_url_from_any_cwd_uses_wal(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store("sqlite:///relative.db")
    monkeypatch.chdir(tmp_path.parent)  # connections opened from now on must find the same file
    try:
        store.migrate()
        store.ensure_project("p", "framing", T0)
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.dispose()
    assert (tmp_path / "relative.db").is_file()


def test_a_new_sqlite_file_waits_for_a_writer_before_turning_wal(tmp_path) -> None:
    """Converting a file to WAL needs an exclusive lock, which SQLite refuses at once (its busy
    timeout does not apply) while another connection writes: two processes creating the store."""
    path = tmp_path / "store.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, writer.execute, ["COMMIT"])
    release.start()
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        release.join()
        writer.close()
        store.dispose()


def test_datetimes_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    berlin = datetime(2025, 3, 1, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    store.ensure_project("p", "framing", berlin)

    created_at = store.project("p").created_at
    assert created_at == berlin
    assert created_at.utcoffset() == timedelta(0)
    assert created_at.hour == 9

    with pytest.raises(StatementError, match="naive datetime"):
        store.ensure_project("q", "framing", datetime(2025, 3, 1, 10, 30))
    assert store.project("q") is None


# -- projects, transitions, evaluations ---------------------------------------------------------


def test_ensure_project_is_created_once_with_an_init_transition(store: Store) -> None:
    first = store.ensure_project("churn", "framing", T0)
    again = store.ensure_project("churn", "data", T0 + timedelta(days=1))

    assert (first.phase, again.phase) == ("framing", "framing")
    assert [p.key for p in store.projects()] == ["churn"]
    [init] = store.transitions("churn")
    assert (init.kind, init.from_phase, init.to_phase) == ("init", None, "framing")
    assert [row.action for row in store.audit_log()] == ["transition.init"]


def test_transition_updates_phase_and_writes_audit(store: Store) -> None:
    store.ensure_project("churn", "framing", T0)
    evaluation = store.record_evaluation(
        project="churn",
        gate="problem-framed",
        status="passed",
        mode="enforce",
        policy_hash="p1",
        evidence_digest="e1",
        gate_digest="g1",
        result={"status": "passed", "at": T0},
        at=T0 + timedelta(minutes=1),
    )

    moved = store.transition(
        project="churn",
        to_phase="data",
        kind="advance",
        reason="gate problem-framed passed",
        evaluation_id=evaluation.id,
        at=T0 + timedelta(minutes=2),
    )

    assert store.project("churn").phase == "data"
    assert store.project("churn").updated_at == T0 + timedelta(minutes=2)
    assert (moved.from_phase, moved.to_phase, moved.evaluation_id) == (
        "framing",
        "data",
        evaluation.id,
    )
    assert [t.kind for t in store.transitions("churn")] == ["init", "advance"]
    latest = store.audit_log(limit=1)[0]
    assert (latest.action, latest.subject, latest.actor) == (
        "transition.advance",
        "churn",
        "phasegate",
    )
    assert latest.data["evaluation_id"] == evaluation.id
    assert latest.data["from_phase"] == "framing"
    assert store.verify_audit().ok


def test_failed_transition_changes_nothing(store: Store) -> None:
    store.ensure_project("churn", "framing", T0)
    audit_rows = len(store.audit_log())

    with pytest.raises(IntegrityError):  # no such evaluation: the whole transaction rolls back
        store.transition(
            project="churn", to_phase="data", kind="advance", reason="x", evaluation_id=999, at=T0
        )
    with pytest.raises(UnknownProjectError, match="unknown project 'nope'"):
        store.transition(
            project="nope", to_phase="data", kind="advance", reason="x", evaluation_id=None, at=T0
        )

    assert store.project("churn").phase == "framing"
    assert len(store.transitions("churn")) == 1
    assert len(store.audit_log()) == audit_rows


def test_a_stale_decision_does_not_move_the_project(store: Store) -> None:
    store.ensure_project("churn", "framing", T0)

    def advance(from_phase: str, to_phase: str, minutes: int):
        return store.transition(
            project="churn",
            to_phase=to_phase,
            kind="advance",
            reason=f"gate out of {from_phase} passed",
            evaluation_id=None,
            at=T0 + timedelta(minutes=minutes),
            expected_phase=from_phase,
        )

    assert advance("framing", "data", 1).from_phase == "framing"
    assert advance("data", "experimentation", 2).from_phase == "data"
    audit_rows = len(store.audit_log())
    # The first decision replayed (a redelivered event, a retried flow): it was made in
    # framing, and would move the project back to data labelled "advance".
    assert advance("framing", "data", 3) is None
    assert store.project("churn").phase == "experimentation"
    assert [t.to_phase for t in store.transitions("churn")] == [
        "framing",
        "data",
        "experimentation",
    ]
    assert len(store.audit_log()) == audit_rows


def test_two_deciders_from_one_phase_move_the_project_once(
    new_store: Callable[[], Store],
) -> None:
    first = new_store()
    first.migrate()
    first.ensure_project("churn", "framing", T0)
    stores = [first, new_store()]

    def decide(store: Store, to_phase: str) -> Callable[[], object]:
        told = ("slack.message", f"advanced:churn:{to_phase}", {"text": f"now in {to_phase}"})
        queued_before = ("slack.message", "decided:churn", {"text": "already queued"})
        return lambda: store.transition(
            project="churn",
            to_phase=to_phase,
            kind="advance",
            reason="gate passed",
            evaluation_id=None,
            at=T0,
            expected_phase="framing",
            effects=[told, queued_before],
        )

    first.enqueue_outbox(
        idempotency_key="decided:churn", kind="slack.message", payload={"text": "already queued"}
    )  # a key queued already is a no-op within the move, not an error that undoes it
    moved = run_concurrently([decide(stores[0], "data"), decide(stores[1], "elsewhere")])
    applied = [m for m in moved if m is not None]
    assert len(applied) == 1
    assert first.project("churn").phase == applied[0].to_phase
    assert [t.kind for t in first.transitions("churn")] == ["init", "advance"]
    # what is told about a move exists exactly when the move does: only the winner's
    told = {row.idempotency_key: row.payload for row in first.outbox_rows()}
    assert told == {
        f"advanced:churn:{applied[0].to_phase}": {"text": f"now in {applied[0].to_phase}"},
        "decided:churn": {"text": "already queued"},
    }


def test_regressions_remember_their_rule(store: Store) -> None:
    store.ensure_project("churn", "operation", T0)
    store.ensure_project("fraud", "operation", T0)
    assert store.last_regressions("churn") == {}

    def move(project: str, kind: str, minutes: int, rule: str | None = None):
        return store.transition(
            project=project,
            to_phase="model-development" if kind == "regress" else "operation",
            kind=kind,
            reason=f"{kind} {rule}",
            evaluation_id=None,
            at=T0 + timedelta(minutes=minutes),
            rule=rule,
        )

    move("churn", "regress", 10, "drift")
    move("churn", "advance", 20)
    move("churn", "regress", 30, "drift")
    move("churn", "advance", 35)
    move("churn", "regress", 40, "quality")
    move("fraud", "regress", 50, "drift")

    last = store.last_regressions("churn")
    assert last == {"drift": T0 + timedelta(minutes=30), "quality": T0 + timedelta(minutes=40)}
    assert {at.utcoffset() for at in last.values()} == {timedelta(0)}
    assert store.last_regressions("fraud") == {"drift": T0 + timedelta(minutes=50)}
    assert [t.rule for t in store.transitions("churn")] == [
        None,
        "drift",
        None,
        "drift",
        None,
        "quality",
    ]
    latest = store.audit_log(limit=1)[0]
    assert (latest.action, latest.subject, latest.data["rule"]) == (
        "transition.regress",
        "fraud",
        "drift",
    )

    with pytest.raises(ValueError, match="only a regression has a rule"):
        move("churn", "advance", 60, "drift")
    assert len(store.transitions("churn")) == 6


def test_last_evaluations_are_the_latest_per_gate(store: Store) -> None:
    store.ensure_project("churn", "framing", T0)

    def record(gate: str, status: str, minutes: int) -> int:
        row = store.record_evaluation(
            project="churn",
            gate=gate,
            status=status,
            mode="enforce",
            policy_hash="p",
            evidence_digest="e",
            gate_digest="g",
            result={"status": status},
            at=T0 + timedelta(minutes=minutes),
        )
        return row.id

    newest_framed = record("problem-framed", "passed", 30)
    record("problem-framed", "failed", 10)  # recorded late, happened earlier
    only_data = record("data-checked", "failed", 20)

    latest = store.last_evaluations("churn")
    assert {gate: row.id for gate, row in latest.items()} == {
        "problem-framed": newest_framed,
        "data-checked": only_data,
    }
    assert latest["problem-framed"].result == {"status": "passed"}
    assert [row.status for row in store.evaluations("churn", "problem-framed")] == [
        "passed",
        "failed",
    ]
    assert len(store.evaluations("churn", limit=2)) == 2
    assert store.last_evaluations("other") == {}


# -- approvals and waivers ----------------------------------------------------------------------


def approve(
    store: Store,
    decision: str = "approve",
    digest: str | None = "g1",
    minutes: int = 0,
    *,
    gate: str = "problem-framed",
    reason: str = "looks right",
    source: str = "slack",
):
    return store.add_approval(
        project="churn",
        gate=gate,
        person="bo",
        decision=decision,
        digest=digest,
        reason=reason,
        source=source,
        at=T0 + timedelta(minutes=minutes),
    )


def approval_actions(store: Store) -> list[str]:
    return [row.action for row in reversed(store.audit_log()) if row.action.startswith("approval")]


def test_a_repeated_click_writes_nothing(store: Store) -> None:
    store.ensure_project("churn", "framing", T0)

    first, created = approve(store)
    again, created_again = approve(store, minutes=1, reason="clicked twice")
    assert (created, created_again) == (True, False)
    assert (again.id, again.at, again.reason) == (first.id, T0, "looks right")

    unbound = [approve(store, digest=None)[1] for _ in range(3)]
    assert unbound == [True, False, False]

    assert store.approvals("churn", "problem-framed") == [
        Approval(person="bo", decision="approve", digest="g1", at=T0, reason="looks right"),
        Approval(person="bo", decision="approve", digest=None, at=T0, reason="looks right"),
    ]
    assert store.approvals("churn", "other-gate") == []
    assert approval_actions(store) == ["approval.approve", "approval.approve"]

    with pytest.raises(UnknownProjectError):
        store.add_approval(
            project="nope",
            gate="g",
            person="bo",
            decision="approve",
            digest=None,
            reason=None,
            source="cli",
            at=T0,
        )


def test_a_change_of_mind_replaces_the_decision_and_is_audited(store: Store) -> None:
    store.ensure_project("churn", "framing", T0)
    first, _ = approve(store)

    changed, written = approve(store, "reject", minutes=5, reason="metric is wrong", source="cli")
    assert written is True
    assert changed.id == first.id
    assert (changed.decision, changed.reason, changed.source, changed.at) == (
        "reject",
        "metric is wrong",
        "cli",
        T0 + timedelta(minutes=5),
    )
    assert approve(store, "reject", minutes=6)[1] is False  # the reject clicked twice
    assert store.approvals("churn", "problem-framed") == [
        Approval(
            person="bo",
            decision="reject",
            digest="g1",
            at=T0 + timedelta(minutes=5),
            reason="metric is wrong",
        )
    ]

    back, written = approve(store, "approve", minutes=9, reason="fixed")
    assert (written, back.id, back.decision) == (True, first.id, "approve")
    assert [a.decision for a in store.approvals("churn", "problem-framed")] == ["approve"]

    assert approval_actions(store) == ["approval.approve", "approval.changed", "approval.changed"]
    latest = store.audit_log(limit=1)[0]
    assert (latest.actor, latest.subject) == ("bo", "churn/problem-framed")
    assert {k: latest.data[k] for k in ("approval_id", "from", "to", "reason")} == {
        "approval_id": first.id,
        "from": "reject",
        "to": "approve",
        "reason": "fixed",
    }
    assert store.verify_audit().ok


def test_a_decision_on_other_evidence_or_made_earlier_changes_nothing(store: Store) -> None:
    store.ensure_project("churn", "framing", T0)
    approve(store, minutes=10)

    # New evidence is a new question: its own row, the old one untouched.
    assert approve(store, "reject", digest="g2", minutes=11)[1] is True
    # A click made before the stored one but processed after it (another worker) is stale.
    stale, written = approve(store, "reject", minutes=5)
    assert (written, stale.decision, stale.at) == (False, "approve", T0 + timedelta(minutes=10))

    assert [(a.digest, a.decision) for a in store.approvals("churn", "problem-framed")] == [
        ("g1", "approve"),
        ("g2", "reject"),
    ]
    assert approval_actions(store) == ["approval.approve", "approval.reject"]


def test_simultaneous_opposite_decisions_are_both_applied(
    new_store: Callable[[], Store],
) -> None:
    """Whichever insert wins the race, the loser's decision replaces it instead of vanishing."""
    new_store().migrate()
    clickers = [new_store(), new_store()]
    clickers[0].ensure_project("churn", "framing", T0)

    for round_ in range(10):
        gate = f"gate-{round_}"
        results = run_concurrently(
            [
                lambda c=c, d=d, g=gate: approve(c, d, gate=g)
                for c, d in zip(clickers, ["approve", "reject"], strict=True)
            ]
        )
        assert [written for _, written in results] == [True, True]
        assert [row.decision for row, _ in results] == ["approve", "reject"]
        [stored] = clickers[0].approvals("churn", gate)
        assert stored.decision in {"approve", "reject"}

    actions = approval_actions(clickers[0])
    assert len(actions) == 20 and actions.count("approval.changed") == 10
    assert clickers[0].verify_audit().ok


def test_waivers_round_trip(store: Store) -> None:
    store.ensure_project("churn", "framing", T0)
    grant = {
        "project": "churn",
        "gate": "problem-framed",
        "check_id": "architecture-doc",
        "person": "lead",
        "reason": "doc lives in Confluence this quarter",
        "at": T0,
        "expires_at": T0 + timedelta(days=30),
    }
    row, created = store.add_waiver(**grant)
    again, created_again = store.add_waiver(**grant)  # the same grant recorded twice

    assert row.id is not None and created
    assert (again.id, created_again) == (row.id, False)
    assert [r.action for r in store.audit_log()].count("waiver.granted") == 1
    assert [r.id for r in store.waivers_in_force(T0 + timedelta(days=1))] == [row.id]
    assert store.waivers_in_force(T0 + timedelta(days=1), project="fraud") == []
    assert store.waivers_in_force(T0 + timedelta(days=30)) == []  # ended
    assert store.waivers_in_force(T0 - timedelta(seconds=1)) == []  # not begun
    assert store.waivers("churn", "problem-framed") == [
        Waiver(
            check="architecture-doc",
            person="lead",
            reason="doc lives in Confluence this quarter",
            at=T0,
            expires_at=T0 + timedelta(days=30),
        )
    ]
    latest = store.audit_log(limit=1)[0]
    assert (latest.action, latest.actor) == ("waiver.granted", "lead")
    assert latest.data["expires_at"] == "2025-03-31T09:00:00.000000+00:00"


# -- inbox and outbox ---------------------------------------------------------------------------


def add_event(store: Store, delivery_id: str, payload: dict | None = None):
    return store.add_inbox_event(
        source="github",
        delivery_id=delivery_id,
        kind="issues",
        payload=payload or {"action": "labeled"},
        received_at=T0,
    )


def test_same_delivery_five_times_is_one_row(store: Store) -> None:
    results = [add_event(store, "d-1", {"attempt": n}) for n in range(5)]

    assert [created for _, created in results] == [True, False, False, False, False]
    assert len({row.id for row, _ in results}) == 1
    [stored] = store.inbox_events()
    assert stored.payload == {"attempt": 0}
    assert (stored.status, stored.attempts) == ("pending", 0)
    assert len(store.inbox_events(status="done")) == 0


def test_events_written_together_dedupe_each_one(store: Store) -> None:
    """A group commit holding a redelivery of a stored event, and one delivered twice within
    the batch, keeps one row per delivery and says which were new."""

    def event(source: str, delivery: str, payload: dict) -> InboxEvent:
        return InboxEvent(source, delivery, "issues", stored_json(payload), T0)

    [(first_id, _)] = store.add_inbox_events([event("github", "d-1", {})])
    batch = [
        event("github", "d-1", {"again": True}),
        event("github", "d-2", {"at": T0, "b": 1, "a": 2}),
        event("github", "d-2", {"twice": True}),
        event("mlflow", "d-1", {}),
    ]

    stored = store.add_inbox_events(batch)

    assert [created for _, created in stored] == [False, True, False, True]
    assert stored[0][0] == first_id and stored[1][0] == stored[2][0]
    rows = {(row.source, row.delivery_id): row for row in store.inbox_events()}
    assert len(rows) == 3
    assert rows["github", "d-1"].payload == {}
    assert list(rows["github", "d-2"].payload.items()) == [  # as sent, in its order
        ("at", "2025-03-01T09:00:00.000000+00:00"),
        ("b", 1),
        ("a", 2),
    ]
    assert rows["github", "d-2"].received_at == T0


def test_simultaneous_redeliveries_store_one_row(new_store: Callable[[], Store]) -> None:
    new_store().migrate()
    receivers = [new_store() for _ in range(6)]

    results = run_concurrently([lambda r=r: add_event(r, "d-race") for r in receivers])

    assert sum(created for _, created in results) == 1
    assert len({row.id for row, _ in results}) == 1
    assert len(receivers[0].inbox_events()) == 1


def test_claimers_never_get_the_same_event(new_store: Callable[[], Store]) -> None:
    new_store().migrate()
    workers = [new_store(), new_store()]
    ids = {add_event(workers[0], f"d-{n}")[0].id for n in range(60)}

    def drain(store: Store) -> list[int]:
        claimed: list[int] = []
        while batch := store.claim_inbox_events(3):
            claimed.extend(row.id for row in batch)
        return claimed

    first, second = run_concurrently([lambda w=w: drain(w) for w in workers])

    assert sorted(first + second) == sorted(ids)  # each event exactly once
    events = workers[0].inbox_events(limit=1000)
    assert {(e.status, e.attempts) for e in events} == {("processing", 1)}


def test_inbox_lookups_filters_and_counts(store: Store) -> None:
    assert store.inbox_counts() == {}
    first, _ = add_event(store, "d-1")
    second, _ = add_event(store, "d-2")
    mlflow, _ = store.add_inbox_event(
        source="mlflow", delivery_id="d-1", kind="model_version", payload={}, received_at=T0
    )
    store.claim_inbox_events(1)
    store.finish_inbox_event(first.id, "failed", error="boom")

    found = store.inbox_event(first.id)
    assert (found.delivery_id, found.status, found.error) == ("d-1", "failed", "boom")
    assert store.inbox_event(999) is None
    assert [e.id for e in store.inbox_events(source="github")] == [first.id, second.id]
    assert [e.id for e in store.inbox_events("pending", source="github")] == [second.id]
    assert [e.id for e in store.inbox_events(source="mlflow")] == [mlflow.id]
    assert store.inbox_events(source="slack") == []

    statements: list[str] = []

    def remember(_conn, _cursor, statement: str, *_args) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", remember)
    try:
        assert store.inbox_counts() == {"failed": 1, "pending": 2}
    finally:
        event.remove(store.engine, "before_cursor_execute", remember)
    [counted] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert "GROUP BY" in counted.upper()  # counted by the database, no rows loaded


def test_failed_inbox_events_are_retried_up_to_the_attempt_limit(store: Store) -> None:
    failing, flaky, done, busy = (add_event(store, f"d-{n}")[0] for n in range(4))
    store.claim_inbox_events(10)
    store.finish_inbox_event(failing.id, "failed", error="boom")
    store.finish_inbox_event(flaky.id, "failed", error="timeout")
    store.finish_inbox_event(done.id, "done")

    assert store.retry_failed_inbox(max_attempts=2) == 2
    retried = store.inbox_event(failing.id)
    assert (retried.status, retried.attempts, retried.error) == ("pending", 1, "boom")
    assert store.inbox_event(done.id).status == "done"
    assert store.inbox_event(busy.id).status == "processing"

    assert [e.id for e in store.claim_inbox_events(10)] == [failing.id, flaky.id]
    store.finish_inbox_event(failing.id, "failed", error="boom again")
    store.finish_inbox_event(flaky.id, "done")
    assert store.retry_failed_inbox(max_attempts=2) == 0  # two attempts spent
    assert store.inbox_event(failing.id).status == "failed"
    assert store.retry_failed_inbox(max_attempts=3) == 1
    assert store.inbox_counts() == {"pending": 1, "done": 2, "processing": 1}


def test_finished_and_abandoned_inbox_events(store: Store) -> None:
    done, _ = add_event(store, "d-1")
    stuck, _ = add_event(store, "d-2")
    assert [e.id for e in store.claim_inbox_events(10)] == [done.id, stuck.id]

    finished = store.finish_inbox_event(done.id, "done")
    assert finished.status == "done" and finished.processed_at is not None
    assert store.claim_inbox_events(10) == []

    [reclaimed] = store.claim_inbox_events(10, reclaim_after=timedelta(0))
    assert (reclaimed.id, reclaimed.attempts) == (stuck.id, 2)
    failed = store.finish_inbox_event(stuck.id, "failed", error="boom")
    assert (failed.status, failed.error) == ("failed", "boom")
    assert store.claim_inbox_events(10, reclaim_after=timedelta(0)) == []

    with pytest.raises(LookupError, match="no inbox_events row with id 999"):
        store.finish_inbox_event(999, "done")


def test_outbox_is_idempotent_and_keeps_the_external_id(store: Store) -> None:
    row, created = store.enqueue_outbox(
        idempotency_key="check:churn:abc", kind="check_run", payload={"n": 1}
    )
    again, created_again = store.enqueue_outbox(
        idempotency_key="check:churn:abc", kind="check_run", payload={"n": 2}
    )
    assert (created, created_again) == (True, False)
    assert again.id == row.id and again.payload == {"n": 1}
    assert [r.id for r in store.outbox_rows("pending")] == [row.id]

    retry = store.finish_outbox(row.id, "pending", external_id="4242", error="502 from GitHub")
    assert (retry.status, retry.attempts, retry.external_id) == ("pending", 1, "4242")
    assert retry.not_before is not None  # no retry_after: due at once
    assert [r.external_id for r in store.outbox_rows("pending")] == ["4242"]

    done = store.finish_outbox(row.id, "done")
    assert (done.status, done.attempts, done.external_id) == ("done", 2, "4242")
    assert done.last_error is None and done.done_at is not None
    assert store.outbox_rows("pending") == []


def enqueue(store: Store, key: str) -> OutboxRow:
    return store.enqueue_outbox(idempotency_key=key, kind="check_run", payload={"key": key})[0]


def test_outbox_workers_never_claim_the_same_row(new_store: Callable[[], Store]) -> None:
    new_store().migrate()
    workers = [new_store(), new_store()]
    ids = {enqueue(workers[0], f"k-{n}").id for n in range(60)}

    def drain(store: Store) -> list[int]:
        claimed: list[int] = []
        while batch := store.claim_outbox(3):
            claimed.extend(row.id for row in batch)
        return claimed

    first, second = run_concurrently([lambda w=w: drain(w) for w in workers])

    assert sorted(first + second) == sorted(ids)  # each side effect exactly once
    assert workers[0].outbox_rows("pending") == []
    with workers[0].engine.connect() as connection:
        states = connection.execute(
            select(OutboxRow.status, OutboxRow.attempts, OutboxRow.claimed_at.is_(None)).distinct()
        )
        assert states.all() == [("processing", 0, False)]


def test_outbox_retry_waits_for_not_before(store: Store) -> None:
    row, other = enqueue(store, "k-1"), enqueue(store, "k-2")
    now = datetime.now(UTC)
    claimed = store.claim_outbox(10, now=now)
    assert [(r.id, r.status, r.claimed_at) for r in claimed] == [
        (row.id, "processing", now),
        (other.id, "processing", now),
    ]
    assert store.claim_outbox(10, now=now) == []  # claimed rows are nobody else's
    assert store.outbox_rows("pending") == []

    retry = store.finish_outbox(
        row.id, "pending", external_id="4242", error="429", retry_after=timedelta(minutes=5)
    )
    assert (retry.status, retry.attempts, retry.claimed_at) == ("pending", 1, None)
    assert (
        now + timedelta(minutes=5) <= retry.not_before <= datetime.now(UTC) + timedelta(minutes=5)
    )
    assert [r.id for r in store.outbox_rows("pending")] == [row.id]  # listed while it waits

    assert store.claim_outbox(10, now=now + timedelta(minutes=4)) == []
    [again] = store.claim_outbox(10, now=retry.not_before)
    assert (again.id, again.external_id, again.attempts) == (row.id, "4242", 1)


def test_outbox_rows_of_a_dead_worker_are_reclaimed(store: Store) -> None:
    row = enqueue(store, "k-1")
    store.claim_outbox(10, now=T0)
    stuck = timedelta(minutes=5)

    assert store.claim_outbox(10, reclaim_after=stuck, now=T0 + timedelta(minutes=4)) == []
    [again] = store.claim_outbox(10, reclaim_after=stuck, now=T0 + timedelta(minutes=6))
    assert (again.id, again.claimed_at) == (row.id, T0 + timedelta(minutes=6))

    failed = store.finish_outbox(row.id, "failed", error="422", retry_after=timedelta(minutes=1))
    assert (failed.status, failed.claimed_at, failed.not_before) == ("failed", None, None)
    assert store.claim_outbox(10, reclaim_after=timedelta(0), now=T0 + timedelta(days=1)) == []

    with pytest.raises(ValueError, match="not 'processing'"):
        store.finish_outbox(row.id, "processing")  # type: ignore[arg-type]


# -- audit log ----------------------------------------------------------------------------------


def test_verify_audit_names_an_altered_row(store: Store) -> None:
    rows = add_audit_rows(store, 5)
    report = store.verify_audit()
    assert (report.ok, report.rows, report.first_bad_id) == (True, 5, None)
    assert report.last_hash == rows[-1].hash

    with store.engine.begin() as connection:
        connection.execute(update(AuditRow).where(AuditRow.id == rows[2].id).values(data={"n": 99}))

    report = store.verify_audit()
    assert (report.ok, report.first_bad_id) == (False, rows[2].id)
    assert report.message.startswith(f"audit row {rows[2].id} was altered: stored hash")
    assert report.last_hash == rows[1].hash


def test_verify_audit_notices_a_rewritten_row_at_the_next_link(store: Store) -> None:
    rows = add_audit_rows(store, 4)
    forged = rows[1]
    forged_hash = chain_hash(
        prev_hash=forged.prev_hash,
        at=forged.at,
        actor="mallory",
        action=forged.action,
        subject=forged.subject,
        data=forged.data,
    )
    with store.engine.begin() as connection:
        connection.execute(
            update(AuditRow)
            .where(AuditRow.id == forged.id)
            .values(actor="mallory", hash=forged_hash)
        )

    report = store.verify_audit()
    assert report.first_bad_id == rows[2].id
    assert f"audit row {rows[2].id} does not follow row {forged.id}" in report.message


def test_verify_audit_detects_a_deleted_row(store: Store) -> None:
    rows = add_audit_rows(store, 5)
    with store.engine.begin() as connection:
        connection.execute(delete(AuditRow).where(AuditRow.id == rows[2].id))

    report = store.verify_audit()
    assert (report.ok, report.first_bad_id) == (False, rows[3].id)
    assert (
        f"audit row {rows[3].id} does not follow row {rows[1].id} (prev_hash mismatch)"
        in report.message
    )

    with store.engine.begin() as connection:
        connection.execute(delete(AuditRow).where(AuditRow.id == rows[0].id))
    assert "does not follow the start of the log" in store.verify_audit().message


def test_concurrent_audit_appends_keep_one_chain(new_store: Callable[[], Store]) -> None:
    new_store().migrate()
    writers = [new_store(), new_store()]

    def append(store: Store, name: str) -> None:
        for n in range(50):
            store.audit(actor=name, action="test.append", subject="p", data={"n": n})

    run_concurrently([lambda w=w, i=i: append(w, f"writer-{i}") for i, w in enumerate(writers)])

    report = writers[0].verify_audit()
    assert report.ok, report.message
    assert report.rows == 100
    with writers[0].engine.connect() as connection:
        actors = connection.execute(select(AuditRow.actor, func.count()).group_by(AuditRow.actor))
        assert dict(actors.all()) == {"writer-0": 50, "writer-1": 50}


def test_chain_hash_is_the_same_for_the_same_instant_in_any_zone() -> None:
    here = T0.astimezone(timezone(timedelta(hours=-5)))
    common = {"prev_hash": GENESIS, "actor": "a", "action": "x", "subject": "s"}
    assert chain_hash(at=T0, data={"b": 1, "a": [1.5]}, **common) == chain_hash(
        at=here, data={"a": [1.5], "b": 1}, **common
    )
    assert chain_hash(at=T0, data={"a": 1}, **common) != chain_hash(at=T0, data={"a": 2}, **common)
    assert jsonable({"at": here, "t": (1, 2)}) == {
        "at": "2025-03-01T09:00:00.000000+00:00",
        "t": [1, 2],
    }
    with pytest.raises(ValueError):
        jsonable({"x": float("nan")})
    assert verify_chain([]).ok
