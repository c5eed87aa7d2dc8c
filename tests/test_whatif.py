"""What a policy change would change: the same project and evidence under two policy sets."""

from __future__ import annotations

import shutil

from gates.evidence import gate_digest
from gates.loader import load_or_raise
from gates.scenario import load_scenario
from gates.whatif import compare
from tests.paths import EXAMPLES

ML_ENGINEER = (
    "  - {id: ml-engineer, roles: [ml-engineer], count: 1, allow_author: false, "
    "expires_after: 14d}\n"
)


def _edit(directory, gate: str, old: str, new: str):
    path = directory / "gates" / f"{gate}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return load_or_raise(directory)


def _compare(current, proposed, scenario: str, approvers: list[str]):
    case = load_scenario(EXAMPLES / scenario)
    digest = gate_digest(case.evidence, current.gates["model-packaged"].reads)
    approvals = [a.model_copy(update={"digest": digest}) for a in case.approvals]
    given = [a for a in approvals if a.person in approvers]
    return compare(
        current,
        proposed,
        case.evidence,
        "model-development",
        lambda gate: given,
        lambda gate: [],
        case.now,
    )


def test_the_same_policies_change_nothing(default_policies):
    assert _compare(default_policies, default_policies, "model-packaged.passed.json", []) is None


def test_dropping_an_approval_rule_is_a_change_even_when_the_status_stays(
    default_policies, policy_copy
):
    proposed = _edit(policy_copy, "model-packaged", ML_ENGINEER, "")
    change = _compare(default_policies, proposed, "model-packaged.passed.json", [])
    assert change is not None
    assert (change.project, change.gate) == ("churn-model", "model-packaged")
    assert (change.before, change.after) == ("awaiting_approval", "awaiting_approval")
    assert change.detail == "approval no longer required: ml-engineer"


def test_dropping_the_rule_that_was_still_missing_lets_the_gate_pass(default_policies, policy_copy):
    proposed = _edit(policy_copy, "model-packaged", ML_ENGINEER, "")
    change = _compare(default_policies, proposed, "model-packaged.passed.json", ["alice"])
    assert change is not None
    assert (change.before, change.after) == ("awaiting_approval", "passed")
    assert change.detail == "approval no longer required: ml-engineer"


def test_more_approvals_required_and_a_new_rule_are_listed(default_policies, policy_copy):
    _edit(
        policy_copy,
        "model-packaged",
        "{id: ds-lead, roles: [ds-lead], count: 1",
        "{id: ds-lead, roles: [ds-lead], count: 2",
    )
    proposed = _edit(
        policy_copy,
        "model-packaged",
        ML_ENGINEER,
        ML_ENGINEER + "  - {id: business, roles: [business-owner], count: 1}\n",
    )
    change = _compare(default_policies, proposed, "model-packaged.passed.json", ["alice", "dave"])
    assert change is not None
    assert (change.before, change.after) == ("passed", "awaiting_approval")
    assert change.detail == (
        "approval newly required: business (1 missing); "
        "approval ds-lead: 2 required, 1 missing (now 1 required, 0 missing)"
    )


def test_a_stricter_check_is_newly_failing(default_policies, policy_copy):
    proposed = _edit(
        policy_copy,
        "model-packaged",
        'c.name in ["email", "phone", "ssn", "customer_name", "address"]',
        'c.name in ["email", "phone", "ssn", "customer_name", "address", "tenure_months"]',
    )
    change = _compare(default_policies, proposed, "model-packaged.passed.json", ["alice", "dave"])
    assert change is not None
    assert (change.before, change.after) == ("passed", "blocked")
    assert change.detail.startswith("newly failing: no-pii-inputs")


def test_a_project_the_proposal_removes_is_no_longer_gated(default_policies, policy_copy):
    (policy_copy / "projects" / "churn-model.yaml").unlink()
    shutil.rmtree(policy_copy / "tests")  # its policy tests name the project
    proposed = load_or_raise(policy_copy)
    change = _compare(default_policies, proposed, "model-packaged.passed.json", [])
    assert change is not None
    assert (change.before, change.after) == ("awaiting_approval", "not gated")
