"""Phase moves: only through the phase's own gate, and back on a matching event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gates.lifecycle import advance, regress
from gates.scenario import decide, load_scenario
from tests.paths import EXAMPLES

NOW = datetime(2026, 11, 20, tzinfo=UTC)
DRIFT = {"source": "monitoring", "kind": "alert.firing", "labels": {"category": "drift"}}


def result(policies, name: str):
    return decide(policies, load_scenario(EXAMPLES / name))


def test_passed_gate_advances_only_from_its_phase(default_policies):
    life = default_policies.lifecycle
    passed = result(default_policies, "problem-framed.passed.json")
    move = advance(life, "framing", passed)
    assert (move.from_phase, move.to_phase, move.reason) == (
        "framing",
        "data",
        "gate problem-framed passed",
    )
    assert advance(life, "data", passed) is None  # not the gate that guards data's way out


def test_blocked_or_awaiting_gate_does_not_advance(default_policies):
    life = default_policies.lifecycle
    assert advance(life, "framing", result(default_policies, "problem-framed.blocked.json")) is None
    assert (
        advance(life, "framing", result(default_policies, "problem-framed.awaiting.json")) is None
    )


def test_warn_mode_lets_the_project_through_and_says_so(default_policies):
    blocked = result(default_policies, "problem-framed.blocked.json").model_copy(
        update={"mode": "warn"}
    )
    move = advance(default_policies.lifecycle, "framing", blocked)
    assert move.to_phase == "data"
    assert "warn mode" in move.reason


def test_drift_alert_in_operation_regresses_with_hold_down(default_policies):
    life = default_policies.lifecycle
    move = regress(life, "operation", DRIFT, {}, NOW)
    assert (move.kind, move.to_phase, move.rule) == (
        "regress",
        "model-development",
        "drift-or-quality-alert",
    )
    held = {"drift-or-quality-alert": NOW - timedelta(hours=1)}
    assert regress(life, "operation", DRIFT, held, NOW) is None
    assert regress(life, "operation", DRIFT, held, NOW + timedelta(hours=6)) is not None


def test_other_events_and_phases_do_not_regress(default_policies):
    life = default_policies.lifecycle
    assert regress(life, "deployment", DRIFT, {}, NOW) is None
    assert regress(life, "operation", {**DRIFT, "labels": {"category": "latency"}}, {}, NOW) is None
    assert regress(life, "operation", {**DRIFT, "labels": {}}, {}, NOW) is None
    assert regress(life, "operation", {**DRIFT, "kind": "alert.resolved"}, {}, NOW) is None


def test_a_stale_decision_is_recorded_but_not_applied(default_policies, tmp_path, caplog):
    from flows.decisions import record
    from gates.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    store.ensure_project("churn-model", "framing", NOW)
    passed = result(default_policies, "problem-framed.passed.json")
    move = advance(default_policies.lifecycle, "framing", passed)
    assert record(store, default_policies, passed, "framing", move=move).to_phase == "data"
    store.transition(
        project="churn-model",
        to_phase="experimentation",
        kind="advance",
        reason="gate data-assumptions-checked passed",
        evaluation_id=None,
        at=passed.evaluated_at + timedelta(hours=1),
        expected_phase="data",
    )
    # The problem-framed decision again, from a flow that still believes the project is in
    # framing: kept as an evaluation, but the project does not go back to data.
    assert record(store, default_policies, passed, "framing", move=move) is None
    assert store.project("churn-model").phase == "experimentation"
    assert [t.to_phase for t in store.transitions("churn-model")] == [
        "framing",
        "data",
        "experimentation",
    ]
    assert len(store.evaluations("churn-model")) == 2
    assert (
        "churn-model: not moved framing → data (gate problem-framed passed): "
        "the project left framing before this decision was recorded"
    ) in caplog.text
    store.dispose()
