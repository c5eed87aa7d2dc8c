"""Which gates one decision evaluates and where the project ends up (gates/progress.py, pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gates.progress import last_sent_back, progress, pull_request_gates
from gates.records import Approval, SentBack
from gates.scenario import load_scenario
from tests.paths import EXAMPLES

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def fragments(example: str) -> list[dict]:
    """The evidence of an example as the one fragment a source would have returned."""
    scenario = load_scenario(EXAMPLES / example)
    return [scenario.evidence.model_dump(mode="json", exclude={"project"})]


def run(
    policies, phase: str, example: str, approvals: dict[str, list[Approval]] | None = None, **kw
):
    return progress(
        policies,
        "churn-model",
        phase,
        fragments(example),
        lambda gate: (approvals or {}).get(gate, []),
        lambda gate: [],
        NOW,
        **kw,
    )


def approved(digest: str, *people: str, at: datetime = NOW - timedelta(hours=1)) -> list[Approval]:
    return [Approval(person=p, digest=digest, at=at) for p in people]


def test_a_project_moves_on_while_its_gates_keep_opening(default_policies):
    [awaiting] = run(default_policies, "framing", "problem-framed.passed.json")
    assert (awaiting.phase, awaiting.result.gate, awaiting.result.status) == (
        "framing",
        "problem-framed",
        "awaiting_approval",
    )
    assert awaiting.move is None  # blocked gate: stop there

    given = {"problem-framed": approved(awaiting.result.gate_digest, "alice", "bob")}
    passed, blocked = run(default_policies, "framing", "problem-framed.passed.json", given)
    assert (passed.result.status, passed.move.to_phase) == ("passed", "data")
    # The next phase's gate, on the same evidence, as seen from the new phase.
    assert (blocked.phase, blocked.result.gate, blocked.result.status) == (
        "data",
        "data-assumptions-checked",
        "blocked",
    )
    assert blocked.evidence.project.phase == "data" and blocked.move is None


def test_held_after_a_regression_the_gate_is_evaluated_but_nothing_moves(default_policies):
    [first] = run(default_policies, "framing", "problem-framed.passed.json")
    given = {"problem-framed": approved(first.result.gate_digest, "alice", "bob")}
    [held] = run(default_policies, "framing", "problem-framed.passed.json", given, hold=True)
    assert held.result.status == "passed" and held.move is None


def test_decisions_given_before_the_project_was_sent_back_do_not_count(default_policies):
    [first] = run(default_policies, "framing", "problem-framed.passed.json")
    digest = first.result.gate_digest
    back = SentBack(at=NOW - timedelta(minutes=30), to_phase="framing")
    before = {"problem-framed": approved(digest, "alice", "bob")}  # an hour ago
    [step] = run(default_policies, "framing", "problem-framed.passed.json", before, sent_back=back)
    assert step.result.status == "awaiting_approval" and step.move is None
    reasons = {i.person: i.reason for i in step.result.ignored}
    assert reasons == {
        p: "given before the project was sent back to framing on 2026-11-20 09:30Z"
        for p in ("alice", "bob")
    }

    after = {"problem-framed": approved(digest, "alice", "bob", at=NOW - timedelta(minutes=5))}
    step, _ = run(default_policies, "framing", "problem-framed.passed.json", after, sent_back=back)
    assert step.result.status == "passed" and step.move.to_phase == "data"


def test_a_pull_request_is_checked_by_its_gates_but_moves_only_through_its_phase(
    default_policies,
):
    snapshot = fragments("model-packaged.passed.json")  # holds its model/* pull request
    assert [g.id for g in pull_request_gates(default_policies, snapshot)] == ["model-packaged"]
    assert pull_request_gates(default_policies, fragments("problem-framed.passed.json")) == []

    def check(phase: str, approvals: list[Approval]):
        [step] = progress(
            default_policies,
            "churn-model",
            phase,
            snapshot,
            lambda gate: approvals,
            lambda gate: [],
            NOW,
            pull_request=True,
        )
        return step

    digest = check("model-development", []).result.gate_digest
    given = approved(digest, "alice", "dave")
    elsewhere = check("framing", given)  # not the phase model-packaged guards
    assert (elsewhere.result.status, elsewhere.move) == ("passed", None)
    assert check("model-development", given).move.to_phase == "deployment"


@dataclass
class Change:
    kind: str
    to_phase: str
    at: datetime


def test_last_sent_back_is_the_latest_regression():
    history = [
        Change("init", "framing", NOW - timedelta(days=9)),
        Change("regress", "model-development", NOW - timedelta(days=5)),
        Change("advance", "operation", NOW - timedelta(days=3)),
        Change("regress", "model-development", NOW - timedelta(days=1)),
        Change("advance", "deployment", NOW),
    ]
    assert last_sent_back(history) == SentBack(
        at=NOW - timedelta(days=1), to_phase="model-development"
    )
    assert last_sent_back(history[:1]) is None
