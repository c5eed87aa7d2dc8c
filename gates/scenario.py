"""Deciding a gate from a scenario file: the "would this project pass?" question, offline.

The CLI, the shipped examples and policy tests all go through :func:`decide`, so a policy
test passes exactly when ``phasegate check`` shows the same decision.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gates.evaluate import evaluate
from gates.evidence import Evidence, gate_digest
from gates.policy import Gate, PolicySet, Scenario
from gates.records import SentBack
from gates.result import GateResult


class ScenarioError(ValueError):
    """A scenario or evidence file that cannot be used, with the reason in words."""


def load_scenario(path: Path) -> Scenario:
    """Read a scenario (or bare evidence) from JSON or YAML."""
    try:
        text = path.read_text(encoding="utf-8")
        data = (
            json.loads(text)
            if path.suffix == ".json"
            else YAML(typ="safe", pure=True).load(io.StringIO(text))
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    except (json.JSONDecodeError, YAMLError) as exc:
        raise ScenarioError(f"{path}: not valid JSON/YAML: {exc}") from None
    if isinstance(data, dict) and "evidence" not in data:
        data = {"evidence": data}
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioError(f"{path}: {problems}") from None


def gate_for(policies: PolicySet, evidence: Evidence, gate_id: str | None) -> Gate:
    """The gate asked for, else the one guarding the project's way out of its phase."""
    if gate_id is None:
        phase = evidence.project.phase or policies.lifecycle.initial_phase
        transition = policies.lifecycle.transition_from(phase)
        if transition is None:
            raise ScenarioError(f"phase '{phase}' has no gate to pass; name one with --gate")
        gate_id = transition.gate
    if gate_id not in policies.gates:
        raise ScenarioError(
            f"unknown gate '{gate_id}' (known: {', '.join(sorted(policies.gates))})"
        )
    return policies.gates[gate_id]


def decide(
    policies: PolicySet,
    scenario: Scenario,
    *,
    gate_id: str | None = None,
    now: datetime | None = None,
    sent_back: SentBack | None = None,
) -> GateResult:
    """Evaluate a scenario; its approvals without a digest count as given on its evidence.
    ``sent_back``: the project's last regression (decisions given before it do not count)."""
    key = scenario.evidence.project.key
    if key not in policies.projects:
        known = ", ".join(sorted(policies.projects)) or "none"
        raise ScenarioError(f"unknown project '{key}' (projects in the policies: {known})")
    gate = gate_for(policies, scenario.evidence, gate_id or scenario.gate)
    digest = gate_digest(scenario.evidence, gate.reads)
    approvals = [
        a if a.digest is not None else a.model_copy(update={"digest": digest})
        for a in scenario.approvals
    ]
    when = now or scenario.now or datetime.now(UTC)
    return evaluate(
        gate, scenario.evidence, approvals, scenario.waivers, when, policies, sent_back=sent_back
    )
