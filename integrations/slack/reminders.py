"""Following up approval requests nobody answered: remind, escalate, expire (``reconcile``).

Each gate's ``reminders`` says when. The request's age counts from the first evaluation that
awaited approval on its gate digest; every step is keyed by the request, so running
``reconcile`` every five minutes sends each reminder once. A reminder goes to the people
still asked, in the request's thread; an escalation also asks the holders of
``escalate_to``; expiry edits the request to say so and removes its buttons.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from gates.policy import PolicySet
from gates.result import GateResult
from gates.store import Store
from integrations.slack import blocks, effects
from integrations.slack.effects import Effect
from integrations.slack.interactions import request_opened


def follow_ups(policies: PolicySet, store: Store, now: datetime) -> Iterator[Effect]:
    """The reminders, escalations and expiries due now for every open request."""
    for key, project in policies.projects.items():
        if project.slack is None:
            continue
        for gate_id, row in store.last_evaluations(key).items():
            gate = policies.gates.get(gate_id)
            if gate is None or gate.reminders is None or row.status != "awaiting_approval":
                continue
            opened = request_opened(store, key, gate_id, row.gate_digest)
            if opened is None:
                continue
            result = GateResult.model_validate(row.result)
            yield from _due(policies, result, opened, now)


def _due(
    policies: PolicySet, result: GateResult, opened: datetime, now: datetime
) -> Iterator[Effect]:
    steps = policies.gates[result.gate].reminders
    assert steps is not None
    age = now - opened
    if steps.expire_after is not None and age >= steps.expire_after:
        if expired := effects.request(policies, result, state="expired"):
            yield expired
        return
    prefix = effects.request_prefix(result.project, result.gate, result.gate_digest)
    ids = effects.slack_ids(policies)
    waiting = list(
        dict.fromkeys(p for rule in result.approvals if rule.missing for p in rule.candidates)
    )
    asked = [blocks.mention(p, ids) for p in waiting]
    waited = f"{int(age.total_seconds() // 3600)}h"
    if steps.escalate_after is not None and age >= steps.escalate_after:
        extra = effects.mentions(policies, result.project, steps.escalate_to)
        people = list(dict.fromkeys(asked + extra))
        text = (
            f"🔺 {result.title} for *{result.project}* has waited {waited} for approval: "
            f"escalated to {', '.join(steps.escalate_to)}. {result.summary}"
        )
        yield _threaded(policies, result, f"escalate:{prefix}", text, people, prefix)
    elif steps.remind_after is not None and age >= steps.remind_after and asked:
        text = f"⏰ Reminder: {result.title} for *{result.project}* waits for your decision ({waited})."
        yield _threaded(policies, result, f"remind:{prefix}", text, asked, prefix)


def _threaded(
    policies: PolicySet, result: GateResult, key: str, text: str, people: list[str], prefix: str
) -> Effect:
    """A notice posted in the request's thread (the channel, if the request is not found)."""
    channel = policies.projects[result.project].slack
    assert channel is not None
    return (
        effects.MESSAGE,
        f"{effects.MESSAGE}:{key}",
        {
            "channel": channel.channel,
            "thread_of": prefix,
            "text": text,
            "blocks": blocks.notification(text, people),
        },
    )
