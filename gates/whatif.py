"""What if these policies were in force? The same project, the same evidence, two policy sets.

This is how a policy pull request is reviewed: not by reading YAML, but by seeing which
projects' gate outcomes it would change — computed by the same pure evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from gates.evaluate import evaluate
from gates.evidence import Evidence
from gates.policy import PolicySet
from gates.records import Approval, Waiver
from gates.result import GateResult


@dataclass(frozen=True)
class Change:
    project: str
    gate: str
    before: str
    after: str
    detail: str


def _decide(
    policies: PolicySet,
    evidence: Evidence,
    phase: str,
    approvals: Callable[[str], list[Approval]],
    waivers: Callable[[str], list[Waiver]],
    now: datetime,
) -> GateResult | None:
    transition = policies.lifecycle.transition_from(phase)
    if transition is None or transition.gate not in policies.gates:
        return None
    gate = policies.gates[transition.gate]
    return evaluate(gate, evidence, approvals(gate.id), waivers(gate.id), now, policies)


def compare(
    current: PolicySet,
    proposed: PolicySet,
    evidence: Evidence,
    phase: str,
    approvals: Callable[[str], list[Approval]],
    waivers: Callable[[str], list[Waiver]],
    now: datetime,
) -> Change | None:
    """How one project's next decision would differ under ``proposed``, if at all."""
    project = evidence.project.key
    before = (
        _decide(current, evidence, phase, approvals, waivers, now)
        if project in current.projects
        else None
    )
    after = (
        _decide(proposed, evidence, phase, approvals, waivers, now)
        if project in proposed.projects
        else None
    )
    failing = {c.id for c in before.failing()} if before else set()
    failing_after = {c.id for c in after.failing()} if after else set()
    same_gate = (before.gate if before else None) == (after.gate if after else None)
    asked, asked_after = _asked(before), _asked(after)
    if (
        same_gate
        and (before.status if before else None) == (after.status if after else None)
        and failing == failing_after
        and asked == asked_after
    ):
        return None
    details = []
    if newly := sorted(failing_after - failing):
        details.append("newly failing: " + ", ".join(newly))
    if fixed := sorted(failing - failing_after):
        details.append("no longer failing: " + ", ".join(fixed))
    if same_gate:
        details += _approval_changes(asked, asked_after)
    else:
        details.append(
            f"gate {before.gate if before else 'none'} → {after.gate if after else 'none'}"
        )
    return Change(
        project=project,
        gate=(after or before).gate if (after or before) else "-",
        before=before.status if before else "not gated",
        after=after.status if after else "not gated",
        detail="; ".join(details) or "approvals counted differently",
    )


def _asked(result: GateResult | None) -> dict[str, tuple[int, int]]:
    """Approval rule → (approvals it requires, approvals still missing)."""
    return {r.rule: (r.required, r.missing) for r in result.approvals} if result else {}


def _approval_changes(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> list[str]:
    """What a reviewer of a policy change must see about approvals: a rule dropped or added
    changes who must sign off even when the gate's status stays the same."""
    details = []
    if dropped := sorted(before.keys() - after.keys()):
        details.append("approval no longer required: " + ", ".join(dropped))
    if added := sorted(after.keys() - before.keys()):
        shown = [f"{rule} ({after[rule][1]} missing)" for rule in added]
        details.append("approval newly required: " + ", ".join(shown))
    for rule in sorted(before.keys() & after.keys()):
        (needed, missing), (needed_after, missing_after) = before[rule], after[rule]
        if (needed, missing) != (needed_after, missing_after):
            details.append(
                f"approval {rule}: {needed_after} required, {missing_after} missing "
                f"(now {needed} required, {missing} missing)"
            )
    return details
