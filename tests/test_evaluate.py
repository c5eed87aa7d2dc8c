"""Evaluation semantics: outcomes, groups, skips, errors, waivers, approvals, modes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gates.evaluate import evaluate
from gates.evidence import Evidence
from gates.loader import load_or_raise
from gates.records import Approval, Waiver
from gates.render import to_markdown, to_text

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

GATE = """\
kind: Gate
id: framed
mode: {mode}
checks:
{checks}
approvals:
  - roles: [lead]
    count: 1
    expires_after: 7d
waivers:
  - roles: [lead]
    checks: ["*"]
    max_duration: 14d
"""


def policies_with(small_dir: Path, checks: str, mode: str = "enforce"):
    (small_dir / "gate.yaml").write_text(GATE.format(checks=checks, mode=mode))
    return load_or_raise(small_dir)


def evidence(**parts) -> Evidence:
    return Evidence.model_validate({"project": {"key": "demo"}, **parts})


METRIC = """\
  - id: metric
    expr: mlflow.run.metrics["auc"] >= 0.8
    hint: Train a better model.
"""
ASK = {"primary_metric": {"name": "auc", "threshold": 0.8}}


def run(policies, ev, approvals=(), waivers=(), now=NOW):
    return evaluate(policies.gates["framed"], ev, list(approvals), list(waivers), now, policies)


def approval(person: str, policies, ev, **kw) -> Approval:
    from gates.evidence import gate_digest

    digest = gate_digest(ev, policies.gates["framed"].reads)
    return Approval(
        person=person,
        at=kw.pop("at", NOW - timedelta(hours=1)),
        digest=kw.pop("digest", digest),
        **kw,
    )


def test_cel_check_passes_and_fails_with_explanation(small_dir):
    policies = policies_with(small_dir, METRIC)
    good = evidence(
        mlflow={"run": {"id": "r1", "metrics": {"auc": 0.9}, "url": "http://mlflow/runs/r1"}}
    )
    bad = evidence(
        mlflow={"run": {"id": "r1", "metrics": {"auc": 0.7}, "url": "http://mlflow/runs/r1"}}
    )
    assert run(policies, good).checks[0].outcome == "passed"
    result = run(policies, bad)
    check = result.checks[0]
    assert (result.status, check.outcome) == ("blocked", "failed")
    assert check.found == "mlflow.run.metrics.auc = 0.7"
    assert check.source == "http://mlflow/runs/r1"
    assert check.hint == "Train a better model."


def test_runtime_error_is_error_never_a_pass(small_dir):
    policies = policies_with(small_dir, METRIC)
    result = run(policies, evidence(mlflow={"run": {"id": "r1", "metrics": {"f1": 0.9}}}))
    assert result.status == "error"
    assert result.checks[0].outcome == "error"
    assert "auc" in result.checks[0].found
    assert result.blocking


def test_non_boolean_expression_is_an_error(small_dir):
    policies = policies_with(small_dir, "  - id: metric\n    expr: mlflow.run.metrics['auc']\n")
    result = run(policies, evidence(mlflow={"run": {"id": "r1", "metrics": {"auc": 0.9}}}))
    assert result.checks[0].outcome == "error"
    assert "not true or false" in result.checks[0].found


def test_if_skips_a_check_that_does_not_apply(small_dir):
    checks = METRIC + "    if: mlflow.run != null\n"
    policies = policies_with(small_dir, checks)
    result = run(policies, evidence())
    assert result.checks[0].outcome == "skipped"
    assert result.status == "awaiting_approval"  # skipped is not failed


GROUPS = """\
  - id: docs
    any:
      - id: card
        kind: file_exists
        with: {paths: [docs/model_card.md]}
      - id: readme-card
        kind: file_exists
        with: {paths: [README.md]}
  - id: no-secrets
    not:
      id: env-file
      kind: file_exists
      with: {paths: [.env]}
"""


def test_any_and_not_groups(small_dir):
    policies = policies_with(small_dir, GROUPS)
    one_doc = evidence(files={"README.md": {"path": "README.md"}})
    result = run(policies, one_doc)
    assert [c.outcome for c in result.checks] == ["passed", "passed"]
    assert [c.outcome for c in result.checks[0].children] == ["failed", "passed"]
    leaked = evidence(files={"README.md": {"path": "README.md"}, ".env": {"path": ".env"}})
    result = run(policies, leaked)
    assert [c.outcome for c in result.checks] == ["passed", "failed"]
    assert [c.id for c in result.failing()] == ["no-secrets"]
    nothing = run(policies, evidence())
    assert nothing.checks[0].outcome == "failed"
    assert nothing.checks[0].found == "2 failed"


def test_waiver_by_allowed_role_waives_and_wrong_role_is_ignored(small_dir):
    policies = policies_with(small_dir, METRIC)
    ev = evidence(mlflow={"run": {"id": "r1", "metrics": {"auc": 0.7}}})
    good = Waiver(
        check="metric",
        person="ann-gh",
        reason="Known dip; fix in v5",
        at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=5),
    )
    result = run(policies, ev, [approval("ann", policies, ev)], [good])
    assert result.checks[0].outcome == "waived"
    assert result.checks[0].waiver.person == "ann"
    assert result.status == "passed"
    wrong = good.model_copy(update={"person": "ben"})
    result = run(policies, ev, [approval("ann", policies, ev)], [wrong])
    assert result.checks[0].outcome == "failed"
    assert result.ignored[0].reason == "may not waive 'metric' (needs role lead)"
    too_long = good.model_copy(update={"expires_at": NOW + timedelta(days=30)})
    assert run(policies, ev, [], [too_long]).ignored[0].reason == (
        "a waiver of 'metric' for 31d lasts longer than the policy allows (2w at most)"
    )
    expired = good.model_copy(update={"expires_at": NOW - timedelta(minutes=1)})
    assert run(policies, ev, [], [expired]).ignored[0].reason == (
        "waiver of 'metric' expired 2026-11-20 11:59Z"
    )
    future = good.model_copy(
        update={"at": NOW + timedelta(days=1), "expires_at": NOW + timedelta(days=3)}
    )
    result = run(policies, ev, [], [future])
    assert result.checks[0].outcome == "failed"
    assert result.ignored[0].reason == "waiver of 'metric' is not valid until 2026-11-21 12:00Z"


def test_approvals_count_distinct_people_with_the_role(small_dir):
    policies = policies_with(small_dir, METRIC)
    ev = evidence(mlflow={"run": {"id": "r1", "metrics": {"auc": 0.9}}})
    assert run(policies, ev).status == "awaiting_approval"
    assert run(policies, ev).approvals[0].candidates == ["ann"]
    by_owner = run(policies, ev, [approval("ben", policies, ev)])
    assert by_owner.status == "awaiting_approval"
    assert by_owner.ignored[0].reason == "lacks role lead"
    by_stranger = run(policies, ev, [approval("zed", policies, ev)])
    assert by_stranger.ignored[0].reason == "unknown person 'zed'"
    # Known by GitHub login, Slack id or email as well as by id.
    assert run(policies, ev, [approval("ANN-GH", policies, ev)]).status == "passed"


def test_author_may_not_approve_their_own_work(small_dir):
    policies = policies_with(small_dir, METRIC)
    ev = evidence(
        mlflow={"run": {"id": "r1", "metrics": {"auc": 0.9}}},
        subject={"kind": "pull_request", "author": "ann-gh"},
    )
    result = run(policies, ev, [approval("ann", policies, ev)])
    assert result.status == "awaiting_approval"
    assert "author" in result.ignored[0].reason
    assert result.approvals[0].candidates == []


def test_who_registered_the_model_version_may_not_approve_it(small_dir):
    policies = policies_with(small_dir, METRIC)
    version = {"name": "m", "version": "3", "status": "READY", "user_id": "ann-gh"}
    ev = evidence(
        mlflow={"version": version, "run": {"id": "r1", "metrics": {"auc": 0.9}}},
        subject={"kind": "pull_request", "author": "ben"},  # someone else opened the PR
    )
    result = run(policies, ev, [approval("ann", policies, ev)])
    assert result.status == "awaiting_approval"
    assert result.ignored[0].reason == "is the author of the gated work and may not approve it"


def test_approval_expires(small_dir):
    policies = policies_with(small_dir, METRIC)
    ev = evidence(mlflow={"run": {"id": "r1", "metrics": {"auc": 0.9}}})
    old = approval("ann", policies, ev, at=NOW - timedelta(days=8))
    result = run(policies, ev, [old])
    assert result.status == "awaiting_approval"
    assert "expired" in result.ignored[0].reason


def test_approval_is_bound_to_the_evidence_the_gate_reads(small_dir):
    policies = policies_with(small_dir, METRIC)
    ev = evidence(mlflow={"run": {"id": "r1", "metrics": {"auc": 0.9}}})
    given = approval("ann", policies, ev)
    assert run(policies, ev, [given]).status == "passed"
    # Evidence the gate does not read changes: the approval still counts.
    unrelated = ev.model_copy(update={"extra": {"weather": "rain"}})
    assert unrelated.digest != ev.digest
    assert run(policies, unrelated, [given]).status == "passed"
    # The metric the gate reads changes: the approval no longer counts, and says why.
    changed = evidence(mlflow={"run": {"id": "r1", "metrics": {"auc": 0.95}}})
    result = run(policies, changed, [given])
    assert result.status == "awaiting_approval"
    assert "changed since" in result.ignored[0].reason


def test_latest_decision_per_person_wins_and_rejection_blocks(small_dir):
    policies = policies_with(small_dir, METRIC)
    ev = evidence(mlflow={"run": {"id": "r1", "metrics": {"auc": 0.9}}})
    yes = approval("ann", policies, ev, at=NOW - timedelta(hours=2))
    no = approval(
        "ann",
        policies,
        ev,
        decision="reject",
        reason="Not on this data",
        at=NOW - timedelta(hours=1),
    )
    result = run(policies, ev, [no, yes])
    assert result.status == "blocked"
    assert result.rejections[0].reason == "Not on this data"
    assert "rejected by ann" in result.summary
    assert (
        run(policies, ev, [yes, no.model_copy(update={"at": NOW - timedelta(hours=3)})]).status
        == "passed"
    )


@pytest.mark.parametrize("mode", ["warn", "shadow"])
def test_warn_and_shadow_report_but_never_block(small_dir, mode):
    policies = policies_with(small_dir, METRIC, mode=mode)
    result = run(policies, evidence(mlflow={"run": {"id": "r1", "metrics": {"auc": 0.1}}}))
    assert result.status == "blocked"
    assert not result.blocking
    assert f"mode {mode}" in to_text(result)


def test_evaluation_is_deterministic(default_policies):
    from gates.scenario import decide, load_scenario
    from tests.paths import EXAMPLES

    scenario = load_scenario(EXAMPLES / "model-packaged.blocked.json")
    first = decide(default_policies, scenario).model_dump_json()
    assert all(decide(default_policies, scenario).model_dump_json() == first for _ in range(3))


def test_renderings_explain_a_blocked_check(default_policies):
    from gates.scenario import decide, load_scenario
    from tests.paths import EXAMPLES

    result = decide(default_policies, load_scenario(EXAMPLES / "model-packaged.blocked.json"))
    text, markdown = to_text(result), to_markdown(result)
    for rendering in (text, markdown):
        assert "auc = 0.84 (champion v3: 0.89)" in rendering  # found
        assert "auc ≥ 0.85 and ≥ champion v3 (0.89)" in rendering  # expected
        assert "docs/model_card.md:15" in rendering  # where
        assert "Fill in every section of docs/model_card.md." in rendering  # how to fix
    assert markdown.startswith("### ❌ Model packaged: blocked")
    assert "| ✗ | MLflow version is READY" in markdown


def test_markdown_is_cut_to_githubs_limit(default_policies):
    from gates.scenario import decide, load_scenario
    from tests.paths import EXAMPLES

    result = decide(default_policies, load_scenario(EXAMPLES / "model-packaged.blocked.json"))
    short = to_markdown(result, limit=500, full_at="https://phasegate.example/status/churn-model")
    assert len(short.encode()) <= 500  # GitHub counts bytes; ✓ and ✗ are three each
    assert "more line(s)" in short.splitlines()[-1]
    assert short.endswith("All of it: https://phasegate.example/status/churn-model")


def test_a_source_that_was_down_makes_its_checks_error_not_fail(small_dir):
    policies = policies_with(small_dir, METRIC + GROUPS)
    ev = evidence(unavailable={"mlflow": "MLflow at http://mlflow:5000 did not answer (timeout)"})
    result = run(policies, ev)
    outcomes = {c.id: c.outcome for c in result.nodes()}
    assert outcomes["metric"] == "error"
    assert (
        "mlflow could not be read: MLflow at http://mlflow:5000 did not answer"
        in result.checks[0].found
    )
    assert outcomes["card"] == "failed"  # files were readable: an honest failure
    assert result.status == "error"


def test_a_check_kind_that_raises_is_an_error_never_a_crash_or_a_pass(small_dir, monkeypatch):
    from gates.checks import KINDS, CheckKind
    from gates.checks.base import Params

    def buggy(params: Params, ev: Evidence):
        return ev.files["docs/missing.md"]  # a kind with a bug meeting evidence it did not expect

    monkeypatch.setitem(
        KINDS, "buggy", CheckKind("buggy", "a kind with a bug", Params, buggy, lambda p: [])
    )
    policies = policies_with(small_dir, "  - id: fragile\n    kind: buggy\n    hint: Tell us.\n")
    result = run(policies, evidence())
    check = result.checks[0]
    assert (result.status, check.outcome) == ("error", "error")
    assert check.found == "check kind buggy failed: KeyError: 'docs/missing.md'"
    assert check.hint == "Tell us."


TWO_RULES = """\
kind: Gate
id: framed
checks:
  - id: metric
    expr: ask.primary_metric != null
approvals:
  - roles: [lead]
  - roles: [owner]
"""


def two_rule_policies(small_dir: Path, lead: str, owner: str):
    (small_dir / "gate.yaml").write_text(TWO_RULES)
    (small_dir / "project.yaml").write_text(
        f"kind: Project\nkey: demo\npeople:\n  lead: {lead}\n  owner: {owner}\n"
    )
    return load_or_raise(small_dir)


def test_one_person_with_two_roles_satisfies_one_rule_only(small_dir):
    policies = two_rule_policies(small_dir, lead="[ann]", owner="[ann, ben]")
    ev = evidence(ask=ASK)
    result = run(policies, ev, [approval("ann", policies, ev)])
    assert result.status == "awaiting_approval"
    assert [(r.rule, r.approvers) for r in result.approvals] == [("lead", ["ann"]), ("owner", [])]
    assert result.approvals[1].candidates == ["ben"]  # ann is already counted
    assert [(i.person, i.reason) for i in result.ignored] == [
        (
            "ann",
            "counted for lead, not also for owner: one person's approval counts toward one rule only",
        )
    ]
    both = run(policies, ev, [approval("ann", policies, ev), approval("ben", policies, ev)])
    assert both.status == "passed" and both.ignored == []


def test_approvals_are_matched_to_rules_not_taken_first_come(small_dir):
    # ann may approve for either rule, ben only as lead. Ann approved first: counting her for
    # the first rule she fits (lead) would leave owner empty although both can be satisfied.
    policies = two_rule_policies(small_dir, lead="[ann, ben]", owner="[ann]")
    ev = evidence(ask=ASK)
    first = approval("ann", policies, ev, at=NOW - timedelta(hours=2))
    second = approval("ben", policies, ev, at=NOW - timedelta(hours=1))
    result = run(policies, ev, [first, second])
    assert [(r.rule, r.approvers) for r in result.approvals] == [
        ("lead", ["ben"]),
        ("owner", ["ann"]),
    ]
    assert result.status == "passed"


def test_a_scenario_about_an_unknown_project_is_refused(default_policies):
    from gates.policy import Scenario
    from gates.scenario import ScenarioError, decide

    scenario = Scenario.model_validate({"evidence": {"project": {"key": "fraud-model"}}})
    with pytest.raises(
        ScenarioError,
        match=r"unknown project 'fraud-model' \(projects in the policies: churn-model\)",
    ):
        decide(default_policies, scenario)
