"""Turning a gate result into the project's history: record, move, queue what to tell.

Shared by the flows and ``phasegate check --record`` so that a decision is kept the same way
whoever made it. The engine decides (``gates``); this only writes down what it decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from gates.events import Event
from gates.lifecycle import Move, advance, regress
from gates.policy import PolicySet
from gates.render import to_markdown, to_text
from gates.result import GateResult
from gates.store import Store

DECISION_LOG = "decision.log"


def record(store: Store, policies: PolicySet, result: GateResult, phase: str) -> Move | None:
    """Keep the evaluation; when it opens the gate out of ``phase``, move the project on.

    The side effect is queued with a key made of what the decision is about and what it
    found, so evaluating the same evidence again (a redelivery, a retried run) queues nothing.
    """
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
    move = advance(policies.lifecycle, phase, result)
    if move is not None:
        store.transition(
            project=result.project,
            to_phase=move.to_phase,
            kind=move.kind,
            reason=move.reason,
            evaluation_id=row.id,
            at=result.evaluated_at,
        )
    store.enqueue_outbox(
        idempotency_key=f"decision:{result.project}:{result.gate}:{result.gate_digest}:{result.status}",
        kind=DECISION_LOG,
        payload={
            "project": result.project,
            "gate": result.gate,
            "status": result.status,
            "summary": result.summary,
            "moved": f"{move.from_phase} -> {move.to_phase}" if move else None,
            "text": to_text(result),
            "markdown": to_markdown(result),
            "evaluation_id": row.id,
        },
    )
    return move


def regression(
    store: Store,
    policies: PolicySet,
    project: str,
    phase: str,
    events: Iterable[Event],
    now: datetime,
) -> Move | None:
    """The first event that sends the project back, applied and queued for the owners."""
    fired = store.last_regressions(project)
    for event in events:
        move = regress(policies.lifecycle, phase, event.for_cel(), fired, now)
        if move is None:
            continue
        store.transition(
            project=project,
            to_phase=move.to_phase,
            kind="regress",
            reason=move.reason,
            evaluation_id=None,
            at=now,
            rule=move.rule,
        )
        store.enqueue_outbox(
            idempotency_key=f"regression:{project}:{move.rule}:{event.occurred_at.isoformat()}",
            kind=DECISION_LOG,
            payload={
                "project": project,
                "gate": None,
                "status": "regressed",
                "summary": move.reason,
                "moved": f"{move.from_phase} -> {move.to_phase}",
                "event": {"kind": event.kind, "labels": event.labels},
            },
        )
        return move
    return None
