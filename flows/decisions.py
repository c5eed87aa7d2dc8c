"""Turning a gate result into the project's history: record, move, queue what to tell.

Shared by the flows and ``phasegate check --record`` so that a decision is kept the same way
whoever made it. The engine decides (``gates``); this only writes down what it decided and
queues the side effects, each under a key that makes repeating it harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from gates.events import Event
from gates.evidence import Evidence
from gates.lifecycle import Move, regress, regressions_from
from gates.policy import PolicySet
from gates.render import to_text
from gates.result import GateResult
from gates.store import Effect, Store
from integrations.github import effects as github_effects
from integrations.slack import effects as slack_effects

log = logging.getLogger("phasegate.decisions")

DECISION_LOG = "decision.log"


def record(
    store: Store,
    policies: PolicySet,
    result: GateResult,
    phase: str,
    evidence: Evidence | None = None,
    github: github_effects.Options | None = None,
    slack: bool = False,
    rerun: str | None = None,
    *,
    move: Move | None,
) -> Move | None:
    """Keep the evaluation and make the ``move`` the engine decided (``gates.progress``) from
    ``phase``; the move made, or None when there was none or the project had left ``phase``
    meanwhile (another run decided it first, or this decision is a late one).
    ``github``/``slack``: set when they are connected, so that their side effects are worth
    queueing. ``rerun``: the delivery of a "Re-run" request this decision answers."""
    pull = evidence.github.pull_request if evidence else None
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
        pull_request=pull.number if pull else None,
    )
    if move is not None and store.project(result.project).phase != phase:
        _stale(result.project, move)  # a late decision: the project has moved on since
        move = None

    def effects(move: Move | None) -> list[Effect]:
        told = [decision_log(result, evidence, move, row.id)]
        if github is not None:
            told += github_effects.decision(
                policies, result, evidence, move, github, store.latest_outbox, rerun
            )
        if slack:
            told += slack_effects.decision(
                store, policies, result, move, pull.number if pull else None
            )
        return told

    if move is not None and (
        store.transition(
            project=result.project,
            to_phase=move.to_phase,
            kind=move.kind,
            reason=move.reason,
            evaluation_id=row.id,
            at=result.evaluated_at,
            expected_phase=phase,
            effects=effects(move),
        )
        is None
    ):
        _stale(result.project, move)  # another run made this move a moment before
        move = None
    if move is None:  # told as a decision without a move
        for kind, key, payload in effects(None):
            store.enqueue_outbox(idempotency_key=key, kind=kind, payload=payload)
    return move


def _stale(project: str, move: Move) -> None:
    log.warning(
        "%s: not moved %s → %s (%s): the project left %s before this decision was recorded",
        project,
        move.from_phase,
        move.to_phase,
        move.reason,
        move.from_phase,
    )


def decision_log(
    result: GateResult, evidence: Evidence | None, move: Move | None, evaluation_id: int | None
) -> tuple[str, str, dict[str, Any]]:
    """The decision as the log keeps it. The key names what it is about and what it says, so
    the same decision queued twice (a redelivery, a retried run) is queued once."""
    pull = evidence.github.pull_request if evidence else None
    about = f"{result.project}:{result.gate}" + (f":#{pull.number}" if pull else "")
    return (
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


def regression(
    store: Store,
    policies: PolicySet,
    project: str,
    phase: str,
    events: Iterable[tuple[int, Event]],
    now: datetime,
    slack: bool = False,
    github: github_effects.Options | None = None,
) -> Move | None:
    """The first event that sends the project back, applied and queued for the owners (and,
    with GitHub, the tracking issue's phase label changed back).

    ``events`` pairs each event with the inbox row it came in, so that the phase history
    says which delivery (and which alert) sent the project back."""
    if not regressions_from(policies.lifecycle, phase):
        return None  # most phases have no way back: spare the look-up
    fired = store.last_regressions(project)
    for inbox_id, event in events:
        move = regress(policies.lifecycle, phase, event.for_cel(), fired, now)
        if move is None:
            continue
        if store.project(project).phase != phase:
            _stale(project, move)
            return None
        cause = _cause(inbox_id, event)
        when = event.occurred_at.isoformat()
        told: list[Effect] = [
            (
                DECISION_LOG,
                f"regression:{project}:{move.rule}:{when}",
                {
                    "project": project,
                    "gate": None,
                    "status": "regressed",
                    "summary": move.reason,
                    "moved": f"{move.from_phase} -> {move.to_phase}",
                    "event": {"inbox_id": inbox_id, "kind": event.kind, "labels": event.labels},
                },
            )
        ]
        label = github_effects.phase_label(policies, project, move.to_phase, when)
        if github is not None and label:
            told.append(label)
        if slack and (notice := slack_effects.regressed(policies, project, move, when)):
            told.append(notice)
        applied = store.transition(
            project=project,
            to_phase=move.to_phase,
            kind="regress",
            reason=f"{move.reason} ({cause})",
            evaluation_id=None,
            at=now,
            rule=move.rule,
            expected_phase=phase,
            effects=told,
        )
        if applied is None:
            _stale(project, move)
            return None
        return move
    return None


def _cause(inbox_id: int, event: Event) -> str:
    """Which delivery caused a move, as an operator looks it up (``phasegate events``)."""
    alert = event.labels.get("alertname")
    what = f"alert {alert}" if alert else f"{event.source} {event.kind}"
    return f"{what}, inbox event #{inbox_id}"
