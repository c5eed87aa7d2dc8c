"""``phasegate test``: policy test cases (scenario in, decision expected), like ``opa test``.

A team lead changing a gate sees at once which known situations now decide differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gates.loader import Document
from gates.policy import PolicyCase, PolicySet, PolicyTest, Scenario
from gates.result import GateResult
from gates.scenario import ScenarioError, decide, load_scenario


@dataclass
class CaseResult:
    file: str
    gate: str
    name: str
    problems: list[str] = field(default_factory=list)
    result: GateResult | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _scenario(case: PolicyCase, test_file: Path) -> Scenario:
    if case.scenario is not None:
        base = load_scenario(test_file.parent / case.scenario)
    else:
        assert case.evidence is not None
        base = Scenario(evidence=case.evidence)
    overrides = {
        name: value
        for name in ("approvals", "waivers", "now")
        if (value := getattr(case, name)) is not None
    }
    return base.model_copy(update=overrides)


def _check(case: PolicyCase, result: GateResult) -> list[str]:
    problems = []
    if result.status != case.expect.status:
        problems.append(
            f"expected status {case.expect.status}, got {result.status} ({result.summary})"
        )
    if case.expect.failing is not None:
        failing = [c.id for c in result.failing()]
        if set(failing) != set(case.expect.failing):
            want = ", ".join(sorted(case.expect.failing)) or "none"
            got = ", ".join(sorted(failing)) or "none"
            problems.append(f"expected failing checks [{want}], got [{got}]")
            for check in result.failing():
                problems.append(f"  {check.id}: found {check.found}")
    return problems


def run_case(
    policies: PolicySet, test: PolicyTest, case: PolicyCase, test_file: Path
) -> CaseResult:
    outcome = CaseResult(str(test_file), test.gate, case.name)
    try:
        scenario = _scenario(case, test_file)
    except ScenarioError as exc:
        outcome.problems.append(str(exc))
        return outcome
    if scenario.now is None:
        outcome.problems.append("the case has no 'now' (a test must not depend on the clock)")
        return outcome
    if test.project and scenario.evidence.project.key != test.project:
        outcome.problems.append(
            f"evidence is about project '{scenario.evidence.project.key}', the test names '{test.project}'"
        )
        return outcome
    try:
        outcome.result = decide(policies, scenario, gate_id=test.gate)
    except ScenarioError as exc:
        outcome.problems.append(str(exc))
        return outcome
    outcome.problems += _check(case, outcome.result)
    return outcome


def run_tests(policies: PolicySet, tests: list[Document]) -> list[CaseResult]:
    return [
        run_case(policies, doc.model, case, Path(doc.path))
        for doc in tests
        for case in doc.model.cases
    ]
