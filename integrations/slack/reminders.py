"""Following up approval requests nobody answered: remind, escalate, expire (``reconcile``).

Each gate's ``reminders`` says when. The request's age counts from the first evaluation that
awaited approval on its gate digest; every step is keyed by the request, so running
``reconcile`` every five minutes sends each reminder once. A reminder goes to the people
still asked, in the request's thread. An escalation asks the holders of ``escalate_to`` to
chase those people — it does not let them decide (only the gate's approval roles can), and
its text says so. Expiry edits the request to say so and removes its buttons.

Every open request is also queued again in its current state (and its DMs): queueing is
idempotent, and ``reconcile`` hands a row that failed for good back for another attempt, so a
request Slack refused (the bot was not in the channel yet, Slack was down for longer than the
retries lasted) is sent once the cause is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from gates.policy import PolicySet
from gates.result import GateResult
from gates.store import Effect, Store
from integrations.slack import blocks, effects, requests


def follow_ups(policies: PolicySet, store: Store, now: datetime) -> Iterator[Effect]:
    """The current state, reminders, escalations and expiries of every open request."""
    for key, project in policies.projects.items():
        if project.slack is None:
            continue
        for (gate_id, pull), row in store.latest_evaluations(key).items():
            gate = policies.gates.get(gate_id)
            if gate is None or row.status != requests.AWAITING:
                continue
            opened = requests.opened(store, key, gate_id, row.gate_digest)
            if opened is None:
                continue
            yield from _due(policies, GateResult.model_validate(row.result), pull, opened, now)


def _due(
    policies: PolicySet, result: GateResult, pull: int | None, opened: datetime, now: datetime
) -> Iterator[Effect]:
    gate = policies.gates[result.gate]
    steps = gate.reminders
    until = requests.expiry(gate, opened)
    if until is not None and now >= until:
        if expired := effects.request(policies, result, "expired", pull):
            yield expired
        return
    if shown := effects.request(policies, result, "open", pull):
        yield shown
        if gate.approval_dm:
            yield from effects.direct_messages(policies, result, pull)
    if steps is None:
        return
    prefix = requests.prefix(result.project, result.gate, result.gate_digest, pull)
    ids = effects.slack_ids(policies)
    waiting = list(
        dict.fromkeys(p for rule in result.approvals if rule.missing for p in rule.candidates)
    )
    asked = [blocks.mention(p, ids) for p in waiting]
    age = now - opened
    waited = f"{int(age.total_seconds() // 3600)}h"
    where = f" (PR #{pull})" if pull is not None else ""
    if steps.escalate_after is not None and age >= steps.escalate_after:
        chasers = [
            m
            for m in effects.mentions(policies, result.project, steps.escalate_to)
            if m not in asked
        ]
        deciders = " or ".join(dict.fromkeys(r for rule in result.approvals for r in rule.roles))
        text = (
            f"🔺 {result.title} for *{result.project}*{where} has waited {waited} for approval "
            f"from {', '.join(asked) or 'nobody: no one holds the role'}. Escalated to "
            f"{', '.join(steps.escalate_to)}: please follow up with them — an escalation does "
            f"not let you approve; only {deciders} can decide. {result.summary}"
        )
        yield _threaded(policies, result, f"escalate:{prefix}", text, asked + chasers, prefix)
    elif steps.remind_after is not None and age >= steps.remind_after and asked:
        text = (
            f"⏰ Reminder: {result.title} for *{result.project}*{where} waits for your "
            f"decision ({waited})."
        )
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
