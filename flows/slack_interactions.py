"""Slack clicks in ``process-inbox``: record a decision that may count, refuse one that may not.

A recorded approval or rejection sends its project to evaluation like any other event, so
the gate, the phase, the GitHub check and the Slack message all follow from the engine's
one decision. A refusal is answered with an ephemeral message to the person who clicked
(through the outbox, so Slack being down delays it and loses nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flows.runtime import runtime
from gates.policy import PolicySet
from integrations.slack import effects, interactions


def take(
    row: Any, policies: PolicySet, totals: dict[str, int]
) -> tuple[tuple[str, int | None] | None, str]:
    """Judge one stored interaction; what to evaluate again — the project and, for a gate
    checked per pull request, the PR the request was about (None when nothing was recorded)
    — and what happened, for the inbox row."""
    rt = runtime()
    try:
        decision = interactions.read(row.payload)
    except interactions.NotOurs as exc:
        return None, f"not a phasegate Slack interaction: {exc}"
    verdict = interactions.judge(decision, policies, rt.store, datetime.now(UTC))
    if verdict.refusal is not None:
        if rt.slack is not None and decision.channel:
            kind, key, payload = effects.ephemeral(
                decision.channel, decision.user, row.delivery_id, verdict.refusal, verdict.current
            )
            rt.store.enqueue_outbox(idempotency_key=key, kind=kind, payload=payload)
            totals["replies"] += 1
        return None, f"refused {decision.user}: {verdict.refusal}"
    if decision.action == "reject_dialog":
        return None, "Reject clicked: the receiver opened the reason dialog"
    assert verdict.person is not None
    _, created = rt.store.add_approval(
        project=decision.project,
        gate=decision.gate,
        person=verdict.person,
        decision=decision.action,
        digest=decision.digest,
        reason=decision.reason,
        source="slack",
        at=row.received_at,
    )
    unit = (decision.project, decision.pull_request)
    return unit, "recorded" if created else "already recorded"
