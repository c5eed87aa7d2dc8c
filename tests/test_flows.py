"""The flows on a real (test-harness) Prefect: events in, decisions and side effects out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import collect, process_inbox
from flows.reconcile import reconcile
from flows.runtime import runtime
from gates.records import Approval
from tests import signing
from tests.paths import ROOT
from tests.servers import wait_for

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_event_to_decision_to_side_effect(world):
    world.use_evidence("problem-framed.passed.json")
    world.event("d-1")
    totals = process_inbox()
    assert totals == {"events": 1, "decisions": 1, "done": 1}
    [evaluation] = world.store.evaluations("churn-model")
    assert (evaluation.gate, evaluation.status) == ("problem-framed", "awaiting_approval")
    assert world.store.project("churn-model").phase == "framing"

    for person in ("bob", "alice"):  # approvals given on what the gate showed them
        world.store.add_approval(
            project="churn-model",
            gate="problem-framed",
            person=person,
            decision="approve",
            digest=evaluation.gate_digest,
            reason=None,
            source="test",
            at=datetime.now(UTC),
        )
    world.event("d-2")
    assert process_inbox()["decisions"] == 1
    assert world.store.project("churn-model").phase == "data"
    latest = world.store.last_evaluations("churn-model")
    assert latest["problem-framed"].status == "passed"
    assert latest["data-assumptions-checked"].status == "blocked"  # evaluated on the same snapshot

    assert deliver_outbox()["done"] == 3
    statuses = [d["status"] for d in world.decisions()]
    assert statuses == ["awaiting_approval", "passed", "blocked"]
    assert deliver_outbox()["done"] == 0  # nothing performed twice


def test_same_delivery_five_times_is_one_evaluation(world):
    world.use_evidence("problem-framed.awaiting.json")
    for _ in range(5):
        world.event("same")
    process_inbox()
    process_inbox()
    assert len(world.store.evaluations("churn-model")) == 1


def test_burst_for_one_project_coalesces(world):
    world.use_evidence("problem-framed.awaiting.json")
    for n in range(30):
        world.event(f"burst-{n}")
    totals = process_inbox()
    assert totals["events"] == 30 and totals["done"] == 30
    assert totals["decisions"] == 1
    assert len(world.store.evaluations("churn-model")) == 1
    process_inbox()  # the same evidence again queues no second side effect
    assert len(world.store.outbox_rows("pending")) == 1


def test_events_for_no_project_are_kept_as_ignored_with_the_reason(world):
    world.event("elsewhere", repo="acme/unrelated")
    world.store.add_inbox_event(
        source="slack",
        delivery_id="s-1",
        kind="slack.block_actions",
        payload={"type": "block_actions"},
        received_at=datetime.now(UTC),
    )
    process_inbox()
    rows = {r.delivery_id: r for r in world.store.inbox_events()}
    assert rows["elsewhere"].status == "ignored"
    assert rows["elsewhere"].error == "repository acme/unrelated belongs to no project"
    assert rows["s-1"].status == "ignored" and "Slack" in rows["s-1"].error


def test_drift_alert_regresses_once_and_flapping_is_held_down(world):
    world.use_evidence("monitoring-attached.passed.json")
    now = datetime.now(UTC)
    world.move_to("operation")
    alert = signing.alertmanager(labels={"project": "churn-model"})
    world.store.add_inbox_event(
        source="monitoring", delivery_id="a-1", kind="alert.firing", payload=alert, received_at=now
    )
    process_inbox()
    moves = [(t.kind, t.to_phase, t.rule) for t in world.store.transitions("churn-model")]
    assert ("regress", "model-development", "drift-or-quality-alert") in moves
    assert any(
        d["status"] == "regressed" for d in (r.payload for r in world.store.outbox_rows("pending"))
    )

    world.store.transition(
        project="churn-model",
        to_phase="operation",
        kind="advance",
        reason="fixed and redeployed",
        evaluation_id=None,
        at=datetime.now(UTC),
    )
    again = signing.alertmanager(labels={"project": "churn-model"}, starts="2026-11-20T10:30:00Z")
    world.store.add_inbox_event(
        source="monitoring",
        delivery_id="a-2",
        kind="alert.firing",
        payload=again,
        received_at=datetime.now(UTC),
    )
    process_inbox()
    assert world.store.project("churn-model").phase == "operation"  # within the 6 h hold-down
    assert sum(t.kind == "regress" for t in world.store.transitions("churn-model")) == 1


def test_a_failing_source_fails_the_event_and_reconcile_re_drives_it(world):
    world.use_evidence("problem-framed.awaiting.json")
    (world.checkout / ".phasegate" / "evidence.json").write_text("{broken")
    world.event("d-x")
    totals = process_inbox()
    [row] = world.store.inbox_events()
    assert totals["failed"] == 1 and row.status == "failed"
    assert "evidence.json" in row.error
    world.use_evidence("problem-framed.awaiting.json")  # fixed
    result = reconcile()
    assert result["retried"] == 1
    assert world.store.inbox_event(row.id).status == "done"
    assert world.store.evaluations("churn-model")


def test_reconcile_re_evaluates_projects_without_events(world):
    world.use_evidence("problem-framed.awaiting.json")
    reconcile()
    assert (
        world.store.last_evaluations("churn-model")["problem-framed"].status == "awaiting_approval"
    )
    assert [d["status"] for d in world.decisions()] == ["awaiting_approval"]


def test_an_approval_expiring_is_noticed_by_reconcile(world):
    world.use_evidence("problem-framed.passed.json")
    reconcile()
    digest = world.store.evaluations("churn-model")[0].gate_digest
    long_ago = datetime.now(UTC) - timedelta(days=40)
    for person in ("bob", "alice"):
        world.store.add_approval(
            project="churn-model",
            gate="problem-framed",
            person=person,
            decision="approve",
            digest=digest,
            reason=None,
            source="test",
            at=long_ago,
        )
    assert [a.person for a in world.store.approvals("churn-model", "problem-framed")] == [
        "bob",
        "alice",
    ]
    assert isinstance(world.store.approvals("churn-model", "problem-framed")[0], Approval)
    world.store.add_inbox_event(
        source="phasegate",
        delivery_id="manual",
        kind="reconcile",
        payload={"subject": {"project": "churn-model"}},
        received_at=datetime.now(UTC),
    )
    process_inbox()
    result = json.loads(
        json.dumps(world.store.last_evaluations("churn-model")["problem-framed"].result)
    )
    assert result["status"] == "awaiting_approval"
    assert any("expired" in i["reason"] for i in result["ignored"])


def phase(world) -> str:
    return world.store.project("churn-model").phase


def test_one_bad_event_fails_alone_and_the_rest_of_the_batch_is_decided(world):
    world.use_evidence("problem-framed.awaiting.json")
    world.store.add_inbox_event(
        source="slack",
        delivery_id="s-bad",
        kind="slack.block_actions",
        payload={"user": "U1"},  # not the shape Slack sends
        received_at=datetime.now(UTC),
    )
    world.event("d-good")
    totals = process_inbox()
    assert (totals["failed"], totals["done"], totals["decisions"]) == (1, 1, 1)
    rows = {r.delivery_id: r for r in world.store.inbox_events()}
    assert rows["d-good"].status == "done"
    assert [e.status for e in world.store.evaluations("churn-model")] == ["awaiting_approval"]
    bad = rows["s-bad"]
    assert bad.status == "failed" and bad.attempts == 1
    assert bad.error.startswith("could not route this slack event (slack.block_actions): ")
    assert "AttributeError" in bad.error


def test_a_project_a_policy_change_removed_mid_batch_fails_alone(world):
    """Events are routed before a policy push in the same batch is installed: a project the
    new set no longer has is that unit's error, not a failure of every unit of the batch."""
    world.use_evidence("problem-framed.awaiting.json")
    units = [("churn-model", None), ("renamed-away", None)]

    collected = collect.fn("local", units)

    assert "fragment" in collected["churn-model"]
    assert collected["renamed-away"] == {
        "error": "project 'renamed-away' is not in the policies in force any more "
        "(a policy change removed or renamed it)"
    }


def test_an_event_whose_worker_keeps_dying_is_given_up(world, monkeypatch):
    monkeypatch.setenv("PHASEGATE_RECLAIM_AFTER_S", "0")
    world.use_evidence("problem-framed.awaiting.json")
    world.event("d-doomed")
    for _ in range(5):  # what five workers killed in the middle of it leave behind
        world.store.claim_inbox_events(10, reclaim_after=timedelta(0))
    process_inbox()
    [row] = world.store.inbox_events()
    assert (row.status, row.attempts) == ("failed", 5)
    assert row.error.startswith("gave up after 5 attempts")
    assert world.store.evaluations("churn-model") == []
    assert reconcile()["retried"] == 0


def test_a_regression_stands_until_new_approvals_arrive(world):
    world.use_evidence("monitoring-attached.passed.json")  # passes both gates' checks
    world.move_to("model-development")
    world.event("d-1")
    process_inbox()
    world.approve("model-packaged", "alice", "dave")
    world.event("d-2")
    process_inbox()
    assert phase(world) == "deployment"
    world.approve("monitoring-attached", "dave", "bob")
    world.event("d-3")
    process_inbox()
    assert phase(world) == "operation"

    alert = signing.alertmanager(labels={"project": "churn-model"})
    row, _ = world.store.add_inbox_event(
        source="monitoring",
        delivery_id="a-1",
        kind="alert.firing",
        payload=alert,
        received_at=datetime.now(UTC),
    )
    process_inbox()
    assert phase(world) == "model-development"
    reconcile()  # another pass on the same evidence and the same, old approvals
    assert phase(world) == "model-development"
    last = world.store.last_evaluations("churn-model")["model-packaged"].result
    assert last["status"] == "awaiting_approval"
    assert {i["person"] for i in last["ignored"]} == {"alice", "dave"}
    assert all(
        i["reason"].startswith("given before the project was sent back to model-development on ")
        for i in last["ignored"]
    )
    [regress] = [t for t in world.store.transitions("churn-model") if t.kind == "regress"]
    assert regress.reason.endswith(f"(alert FeatureDrift, inbox event #{row.id})")
    shown = subprocess.run(
        [sys.executable, "-m", "phasegate.cli", "status"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    assert f"alert FeatureDrift, inbox event #{row.id}" in shown

    world.approve("model-packaged", "alice", "dave")  # the same people, after the regression
    world.event("d-4")
    process_inbox()
    assert phase(world) == "deployment"  # and monitoring-attached wants its approvals again


class SlowSource:
    """An evidence source that takes its time (a slow API, retries with backoff)."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def collect(self, project, pull_request):
        time.sleep(self.seconds)
        return {}


def test_a_batch_that_outlasts_the_reclaim_time_keeps_its_claim(world, monkeypatch):
    monkeypatch.setenv("PHASEGATE_RECLAIM_AFTER_S", "1")
    world.use_evidence("problem-framed.awaiting.json")
    runtime().sources.append(SlowSource(3))
    world.event("d-1")
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(process_inbox)
        wait_for(lambda: world.store.inbox_events()[0].status == "processing", timeout=60)
        time.sleep(1.8)  # the claim is older than the reclaim time now, but its worker lives
        taken = world.store.claim_inbox_events(10, reclaim_after=timedelta(seconds=1))
        assert taken == []
        assert running.result()["done"] == 1
    [row] = world.store.inbox_events()
    assert (row.status, row.attempts) == ("done", 1)


def test_reconcile_and_process_inbox_at_once_decide_each_event_once(world):
    world.use_evidence("experiment-succeeded.passed.json")  # its gate needs no approval
    projects = ["churn-model", *(f"p{n}" for n in range(5))]
    text = (world.root / "policies" / "projects" / "churn-model.yaml").read_text()
    for key in projects[1:]:
        (world.root / "policies" / "projects" / f"{key}.yaml").write_text(
            text.replace("key: churn-model", f"key: {key}")
            .replace("acme/churn-model", f"acme/{key}")
            .replace("models: [churn-classifier]", f"models: [{key}-model]")
        )
        os.symlink(world.checkout, world.root / "checkouts" / key)
    for key in projects:
        world.move_to("experimentation", key)
        for n in range(5):
            world.event(f"{key}-{n}", repo=f"acme/{key}")
    with ThreadPoolExecutor(2) as pool:  # reconcile drives the inbox while process-inbox does
        both = [pool.submit(reconcile), pool.submit(process_inbox)]
        [future.result() for future in both]
    rows = world.store.inbox_events(limit=1000)
    assert {(r.status, r.attempts) for r in rows} == {("done", 1)}
    for key in projects:
        moves = [(t.from_phase, t.to_phase) for t in world.store.transitions(key)]
        assert moves[2:] == [("experimentation", "model-development")], key
