"""Claims and moves that must hold with several workers at once: giving up on an event or a
side effect that keeps killing its worker, keeping a live worker's claim (and not acting on a
lost one), moving a project only from the phase it was decided in, and approvals renewed
after a regression. SQLite always, PostgreSQL when ``PHASEGATE_TEST_POSTGRES_URL`` is set
(fixtures shared with tests/test_store.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from flows.claims import kept_claimed
from gates.store import Store
from tests import test_store
from tests.test_store import T0, add_event, enqueue

store_url = test_store.store_url  # the same databases, SQLite and PostgreSQL
new_store = test_store.new_store
store = test_store.store
NO_WAIT = timedelta(0)


def test_an_event_whose_worker_keeps_dying_is_given_up_not_claimed_again(store: Store) -> None:
    doomed, _ = add_event(store, "d-1")
    for attempt in range(1, 4):  # each time the worker dies before finishing it
        [claimed] = store.claim_inbox_events(10, reclaim_after=NO_WAIT, max_attempts=3)
        assert (claimed.id, claimed.attempts) == (doomed.id, attempt)
    healthy, _ = add_event(store, "d-2")

    assert [r.id for r in store.claim_inbox_events(10, reclaim_after=NO_WAIT, max_attempts=3)] == [
        healthy.id
    ]
    given_up = store.inbox_event(doomed.id)
    assert given_up.status == "failed" and given_up.attempts == 3
    assert given_up.error.startswith("gave up after 3 attempts: ")
    assert store.retry_failed_inbox(max_attempts=3) == 0  # reconcile leaves it for a person


def test_giving_up_names_the_last_error(store: Store) -> None:
    row, _ = add_event(store, "d-1")
    store.claim_inbox_events(1)
    store.finish_inbox_event(row.id, "failed", error="mlflow: connection refused")
    store.retry_failed_inbox(max_attempts=2)
    store.claim_inbox_events(1, reclaim_after=NO_WAIT, max_attempts=2)  # and this worker died
    assert store.claim_inbox_events(1, reclaim_after=NO_WAIT, max_attempts=2) == []
    assert store.inbox_event(row.id).error == (
        "gave up after 2 attempts: mlflow: connection refused"
    )


def test_a_renewed_claim_is_not_taken_over(store: Store) -> None:
    first, _ = add_event(store, "d-1")
    second, _ = add_event(store, "d-2")
    store.claim_inbox_events(10, now=T0)
    assert store.renew_inbox_claims([first.id], now=T0 + timedelta(minutes=5)) == 1

    later = T0 + timedelta(minutes=6)
    taken = store.claim_inbox_events(10, reclaim_after=timedelta(minutes=3), now=later)
    assert [r.id for r in taken] == [second.id]  # the one nobody renewed
    store.finish_inbox_event(first.id, "done")
    assert store.renew_inbox_claims([first.id]) == 0  # a finished event stays finished
    assert store.inbox_event(first.id).status == "done"


def test_the_same_approval_given_again_after_a_regression_counts_from_then(store: Store) -> None:
    store.ensure_project("churn", "model-development", T0)

    def approve(minutes: int) -> bool:
        return store.add_approval(
            project="churn",
            gate="model-packaged",
            person="alice",
            decision="approve",
            digest="d1",
            reason=None,
            source="slack",
            at=T0 + timedelta(minutes=minutes),
        )[1]

    assert approve(1) is True
    assert approve(2) is False  # a repeated click
    store.transition(
        project="churn",
        to_phase="model-development",
        kind="regress",
        reason="drift",
        evaluation_id=None,
        at=T0 + timedelta(minutes=10),
        rule="drift",
    )
    assert approve(11) is True  # given again after the regression: a new decision
    assert approve(12) is False
    [approval] = store.approvals("churn", "model-packaged")
    assert approval.at == T0 + timedelta(minutes=11)
    assert [r.action for r in store.audit_log(limit=2)] == [
        "approval.renewed",
        "transition.regress",
    ]


# -- outbox -------------------------------------------------------------------------------------


def test_a_side_effect_whose_worker_keeps_dying_is_given_up_not_claimed_again(
    store: Store,
) -> None:
    doomed = enqueue(store, "k-1")
    for attempt in range(3):  # each worker dies performing it; a takeover counts its attempt
        [claimed] = store.claim_outbox(10, reclaim_after=NO_WAIT, max_attempts=3)
        assert (claimed.id, claimed.attempts) == (doomed.id, attempt)
    healthy = enqueue(store, "k-2")

    taken = store.claim_outbox(10, reclaim_after=NO_WAIT, max_attempts=3)
    assert [r.id for r in taken] == [healthy.id]
    [given_up] = store.outbox_rows("failed")
    assert (given_up.id, given_up.attempts, given_up.claimed_at) == (doomed.id, 3, None)
    assert given_up.last_error == (
        "gave up after 3 attempts: its worker stopped before finishing it (claim taken over)"
    )
    assert store.claim_outbox(10, reclaim_after=timedelta(days=1), max_attempts=3) == []


def test_giving_up_a_side_effect_names_its_last_error(store: Store) -> None:
    row = enqueue(store, "k-1")
    store.claim_outbox(1)
    store.finish_outbox(row.id, "pending", error="Slack: ratelimited")  # due again at once
    store.claim_outbox(1, reclaim_after=NO_WAIT, max_attempts=2)  # and this worker died
    assert store.claim_outbox(1, reclaim_after=NO_WAIT, max_attempts=2) == []
    [failed] = store.outbox_rows("failed")
    assert failed.last_error == "gave up after 2 attempts: Slack: ratelimited"


def test_a_renewed_side_effect_claim_is_kept_and_a_lost_one_is_not(store: Store) -> None:
    first, second = enqueue(store, "k-1"), enqueue(store, "k-2")
    claims = {row.id: row.attempts for row in store.claim_outbox(10, now=T0)}
    assert store.renew_outbox_claims({first.id: claims[first.id]}, now=T0 + timedelta(minutes=5))

    later = T0 + timedelta(minutes=6)
    [taken] = store.claim_outbox(10, reclaim_after=timedelta(minutes=3), now=later)
    assert (taken.id, taken.attempts) == (second.id, 1)  # the one nobody renewed

    # Its first worker lost it: renewing says so, and finishing changes nothing but what it
    # made (kept, so that the attempt that holds the row updates it rather than makes another).
    assert store.renew_outbox_claims({second.id: claims[second.id]}) == 0
    assert store.finish_outbox(second.id, "done", "C1:1.0", claim=claims[second.id]) is None
    [lost] = [r for r in store.outbox_rows() if r.id == second.id]
    assert (lost.status, lost.attempts, lost.external_id) == ("processing", 1, "C1:1.0")

    done = store.finish_outbox(second.id, "done", "C1:1.0", claim=taken.attempts)
    assert (done.status, done.attempts) == ("done", 2)
    assert store.renew_outbox_claims({first.id: 0, second.id: 1}) == 1  # done stays done


def test_a_side_effect_performed_longer_than_the_reclaim_time_stays_its_workers(
    new_store: Callable[[], Store],
) -> None:
    new_store().migrate()
    slow, other = new_store(), new_store()  # two processes' stores on the same database
    enqueue(slow, "k-1")
    [row] = slow.claim_outbox(1)
    reclaim = timedelta(seconds=1)
    taken = []
    with kept_claimed(partial(slow.renew_outbox_claims, {row.id: row.attempts}), reclaim):
        deadline = time.monotonic() + 2.5  # a slow API: the call outlasts the reclaim time
        while time.monotonic() < deadline:
            taken += other.claim_outbox(10, reclaim_after=reclaim)
            time.sleep(0.2)
    assert taken == []
    assert slow.finish_outbox(row.id, "done", claim=row.attempts).status == "done"
