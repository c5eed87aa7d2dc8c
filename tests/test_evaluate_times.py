"""Approval times are compared as instants, whatever offset each was given in."""

from __future__ import annotations

from pathlib import Path

import pytest

from gates.evaluate import evaluate
from gates.evidence import gate_digest
from gates.records import Approval
from gates.scenario import load_scenario

PASSED = Path(__file__).resolve().parent.parent / "examples/churn-model/problem-framed.passed.json"


def _decide(default_policies, bob_at: str, now: str):
    scenario = load_scenario(PASSED)
    gate = default_policies.gates["problem-framed"]
    digest = gate_digest(scenario.evidence, gate.reads)
    approvals = [
        Approval.model_validate({"person": "bob", "at": bob_at, "digest": digest}),
        Approval.model_validate(
            {"person": "alice", "at": "2026-11-19T09:00:00Z", "digest": digest}
        ),
    ]
    when = Approval.model_validate({"person": "x", "at": now}).at
    return evaluate(gate, scenario.evidence, approvals, [], when, default_policies)


@pytest.mark.parametrize(
    ("bob_at", "now", "reason"),
    [
        ("2026-11-20T14:59:00+05:00", "2026-11-20T10:00:00Z", None),  # 09:59Z: before now
        ("2026-11-20T15:01:00+05:00", "2026-11-20T10:00:00Z", "approval is dated in the future"),
        ("2026-11-20T04:00:00-06:00", "2026-11-20T11:00:00+01:00", None),  # both 10:00Z
        (
            "2026-10-21T09:59:00Z",
            "2026-11-20T12:00:00+02:00",
            "approval expired (older than 30 days, 0:00:00)",
        ),
        ("2026-10-21T12:01:00+02:00", "2026-11-20T10:00:00Z", None),  # 30d minus a minute
    ],
)
def test_approval_times_are_instants(default_policies, bob_at: str, now: str, reason: str | None):
    result = _decide(default_policies, bob_at, now)
    assert [(i.person, i.reason) for i in result.ignored] == ([("bob", reason)] if reason else [])
    assert result.status == ("awaiting_approval" if reason else "passed")
