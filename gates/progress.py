"""How far one decision takes a project: which gates it evaluates, in which order, and where
the project ends up.

Pure: given the evidence fragments the sources returned and the approvals and waivers it is
handed (lookups by gate id, so only the gates actually reached are read), the same inputs
always give the same steps. The flows record the steps; they do not choose them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gates.evaluate import evaluate
from gates.evidence import Evidence, ProjectEvidence, assemble
from gates.lifecycle import Move, advance
from gates.policy import Gate, PolicySet
from gates.records import Approval, SentBack, Waiver
from gates.result import GateResult


@dataclass(frozen=True)
class Step:
    """One gate evaluated in one phase, and the forward move it allows (if any)."""

    phase: str
    evidence: Evidence
    result: GateResult
    move: Move | None


class PhaseChange(Protocol):
    """A row of a project's phase history, as the store keeps it."""

    kind: str
    to_phase: str
    at: datetime


def last_sent_back(history: Iterable[PhaseChange]) -> SentBack | None:
    """The project's latest regression, if it ever had one: decisions older than it no
    longer count (see :func:`gates.evaluate.evaluate`)."""
    regressions = [change for change in history if change.kind == "regress"]
    if not regressions:
        return None
    last = max(regressions, key=lambda change: change.at)
    return SentBack(at=last.at, to_phase=last.to_phase)


def pull_request_gates(policies: PolicySet, fragments: Iterable[Mapping[str, Any]]) -> list[Gate]:
    """The gates that check the pull request the evidence describes (by its branch and
    labels); none when the evidence holds no pull request."""
    pulls = [
        f["github"]["pull_request"]
        for f in fragments
        if (f.get("github") or {}).get("pull_request")
    ]
    if not pulls:
        return []
    return policies.gates_for_pull_request(pulls[0].get("branch", ""), pulls[0].get("labels", []))


def progress(
    policies: PolicySet,
    project: str,
    phase: str,
    fragments: list[dict[str, Any]],
    approvals: Callable[[str], list[Approval]],
    waivers: Callable[[str], list[Waiver]],
    now: datetime,
    *,
    pull_request: bool = False,
    sent_back: SentBack | None = None,
    hold: bool = False,
) -> list[Step]:
    """Evaluate what one decision about ``project`` (in ``phase``) must evaluate.

    For the project itself: the gate out of its phase and, while gates keep opening, the next
    one on the same evidence, so a project whose evidence is complete does not wait for
    another event per phase. For a pull request: every gate that checks such pull requests;
    the project still moves only through its own phase's gate.

    ``hold``: the project was just sent back in this same pass. Its gate is still evaluated,
    so its status says what is wanted now, but it does not move: whatever let it through
    before has just been found wanting, and only a later pass, on new approvals, may.
    """
    config = policies.projects[project]
    models = config.mlflow.models if config.mlflow else []

    def step(gate: Gate, phase: str) -> Step:
        evidence = assemble(ProjectEvidence(key=project, phase=phase, models=models), fragments)
        result = evaluate(
            gate, evidence, approvals(gate.id), waivers(gate.id), now, policies, sent_back=sent_back
        )
        move = None if hold else advance(policies.lifecycle, phase, result)
        return Step(phase, evidence, result, move)

    steps: list[Step] = []
    if pull_request:
        for gate in pull_request_gates(policies, fragments):
            steps.append(step(gate, phase))
            phase = steps[-1].move.to_phase if steps[-1].move else phase
        return steps
    for _ in policies.lifecycle.phases:  # each phase's gate at most once
        transition = policies.lifecycle.transition_from(phase)
        if transition is None:
            break
        steps.append(step(policies.gates[transition.gate], phase))
        if steps[-1].move is None:
            break
        phase = steps[-1].move.to_phase
    return steps
