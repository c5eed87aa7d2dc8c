"""Turning a gate result into the project's history: record, move, queue what to tell.

Shared by the flows and ``phasegate check --record`` so that a decision is kept the same way
whoever made it. The engine decides (``gates``); this only writes down what it decided and
queues the side effects, each under a key that makes repeating it harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from gates.events import Event
from gates.evidence import Evidence
from gates.lifecycle import Move, regress, regressions_from
from gates.policy import PolicySet
from gates.render import GITHUB_SUMMARY_LIMIT, to_markdown, to_text
from gates.result import GateResult
from gates.store import Store
from integrations.slack import effects as slack_effects

DECISION_LOG = "decision.log"
GITHUB_CHECK = "github.check"
GITHUB_PHASE_LABEL = "github.phase_label"

CONCLUSIONS = {
    "passed": "success",
    "blocked": "failure",
    "awaiting_approval": "action_required",
    "error": "failure",
}


def record(
    store: Store,
    policies: PolicySet,
    result: GateResult,
    phase: str,
    evidence: Evidence | None = None,
    github: bool = False,
    slack: bool = False,
    *,
    move: Move | None,
) -> Move | None:
    """Keep the evaluation and make the ``move`` the engine decided (``gates.lifecycle``) from
    ``phase``; the move made, or None when there was none or the project had left ``phase``
    meanwhile (another run decided it first). ``github``/``slack``: whether they are
    connected, so that their side effects are worth queueing."""
    row = store.record_evaluation(
        project=result.project,
        gate=result.gate,
        status=result.status,
        mode=result.mode,
        policy_hash=policies.policy_hash,
        evidence_digest=result.evidence_digest,
        gate_digest=result.gate_digest,
        result=result.model_dump(mode="json"),
        at=result.evaluated_at,
    )
    if move is not None:
        moved = store.transition(
            project=result.project,
            to_phase=move.to_phase,
            kind=move.kind,
            reason=move.reason,
            evaluation_id=row.id,
            at=result.evaluated_at,
            expect_phase=phase,
        )
        move = move if moved is not None else None
    for kind, key, payload in side_effects(policies, result, evidence, move, row.id):
        if github or not kind.startswith("github."):
            store.enqueue_outbox(idempotency_key=key, kind=kind, payload=payload)
    for kind, key, payload in slack_effects.decision(policies, result, move) if slack else ():
        store.enqueue_outbox(idempotency_key=key, kind=kind, payload=payload)
    return move


def side_effects(
    policies: PolicySet,
    result: GateResult,
    evidence: Evidence | None,
    move: Move | None,
    evaluation_id: int | None,
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """What to tell whom about a decision. Keys name what a side effect is about and what it
    says, so the same decision queued twice (a redelivery, a retried run) is queued once."""
    pull = evidence.github.pull_request if evidence else None
    about = f"{result.project}:{result.gate}" + (f":#{pull.number}" if pull else "")
    yield (
        DECISION_LOG,
        f"decision:{about}:{result.gate_digest}:{result.status}",
        {
            "project": result.project,
            "gate": result.gate,
            "pull_request": pull.number if pull else None,
            "status": result.status,
            "summary": result.summary,
            "moved": f"{move.from_phase} -> {move.to_phase}" if move else None,
            "text": to_text(result),
            "evaluation_id": evaluation_id,
        },
    )
    repo = evidence.github.repo if evidence else None
    if pull and repo and pull.head_sha and result.mode != "shadow":
        conclusion = (
            CONCLUSIONS[result.status]
            if result.blocking or result.status == "passed"
            else "neutral"
        )
        yield (
            GITHUB_CHECK,
            f"check:{repo}:{pull.head_sha}:{result.gate}:{result.gate_digest}:{result.status}",
            {
                "repo": repo,
                "head_sha": pull.head_sha,
                "name": f"phasegate / {result.gate}",
                "conclusion": conclusion,
                "title": f"{result.title}: {result.summary}"[:255],
                "summary": to_markdown(result, limit=GITHUB_SUMMARY_LIMIT),
                "annotations": [
                    {
                        "path": c.location.path,
                        "start_line": c.location.line,
                        "end_line": c.location.line,
                        "annotation_level": "failure" if c.outcome == "failed" else "warning",
                        "title": c.title[:255],
                        "message": f"expected {c.expected}; found {c.found}"
                        + (f"\nfix: {c.hint}" if c.hint else ""),
                    }
                    for c in result.failing()
                    if c.location
                ],
            },
        )
    project = policies.projects[result.project]
    if move and project.github and project.github.tracking_issue:
        yield (
            GITHUB_PHASE_LABEL,
            f"label:{result.project}:{move.to_phase}:{result.evaluated_at.isoformat()}",
            {
                "repo": project.github.repo,
                "issue": project.github.tracking_issue,
                "phase": move.to_phase,
                "phases": [p.id for p in policies.lifecycle.phases],
            },
        )


def regression(
    store: Store,
    policies: PolicySet,
    project: str,
    phase: str,
    events: Iterable[tuple[int, Event]],
    now: datetime,
    slack: bool = False,
) -> Move | None:
    """The first event that sends the project back, applied and queued for the owners.

    ``events`` pairs each event with the inbox row it came in, so that the phase history
    says which delivery (and which alert) sent the project back."""
    if not regressions_from(policies.lifecycle, phase):
        return None  # most phases have no way back: spare the look-up
    fired = store.last_regressions(project)
    for inbox_id, event in events:
        move = regress(policies.lifecycle, phase, event.for_cel(), fired, now)
        if move is None:
            continue
        cause = _cause(inbox_id, event)
        moved = store.transition(
            project=project,
            to_phase=move.to_phase,
            kind="regress",
            reason=f"{move.reason} ({cause})",
            evaluation_id=None,
            at=now,
            rule=move.rule,
            expect_phase=phase,
        )
        if moved is None:  # another run moved the project meanwhile
            return None
        store.enqueue_outbox(
            idempotency_key=f"regression:{project}:{move.rule}:{event.occurred_at.isoformat()}",
            kind=DECISION_LOG,
            payload={
                "project": project,
                "gate": None,
                "status": "regressed",
                "summary": move.reason,
                "moved": f"{move.from_phase} -> {move.to_phase}",
                "event": {"inbox_id": inbox_id, "kind": event.kind, "labels": event.labels},
            },
        )
        when = event.occurred_at.isoformat()
        if slack and (notice := slack_effects.regressed(policies, project, move, when)):
            store.enqueue_outbox(idempotency_key=notice[1], kind=notice[0], payload=notice[2])
        return move
    return None


def _cause(inbox_id: int, event: Event) -> str:
    """Which delivery caused a move, as an operator looks it up (``phasegate events``)."""
    alert = event.labels.get("alertname")
    what = f"alert {alert}" if alert else f"{event.source} {event.kind}"
    return f"{what}, inbox event #{inbox_id}"
