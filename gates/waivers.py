"""Which waivers count: who may waive which check of a gate, why, and for how long.

One set of rules for both ends of a waiver's life: ``phasegate waive`` refuses to grant one
the policies would not honour (:func:`refusal`), and the evaluator ignores, with the reason,
one that is not, or no longer, valid (:func:`valid_waivers`). A waiver the CLI accepted is
therefore never silently ignored for a reason the CLI could have said at once.
"""

from __future__ import annotations

from datetime import datetime

from gates.duration import format_duration
from gates.policy import Gate, PolicySet, WaiverRule
from gates.records import Waiver
from gates.result import Ignored, WaiverNote


def rules_for(gate: Gate, check: str, roles: frozenset[str] | set[str]) -> list[WaiverRule]:
    """The waiver rules of ``gate`` that let someone holding ``roles`` waive ``check``."""
    return [r for r in gate.waivers if r.covers(check) and roles.intersection(r.roles)]


def refusal(gate: Gate, project: str, waiver: Waiver, policies: PolicySet) -> str | None:
    """Why ``waiver`` may not be granted under ``policies`` at all (whatever the time), or None.

    The person must be known and hold, in ``project``, a role a waiver rule of the gate allows
    for the check; the reason must say something; the waiver must not outlast the rule.
    """
    person = policies.person(waiver.person)
    if person is None:
        return f"unknown person '{waiver.person}'"
    if waiver.check not in gate.check_ids:
        return (
            f"gate {gate.id} has no check '{waiver.check}' "
            f"(its checks: {', '.join(sorted(gate.check_ids))})"
        )
    rules = rules_for(gate, waiver.check, policies.roles_of(project, person.id))
    if not rules:
        allowed = sorted(
            {r for rule in gate.waivers if rule.covers(waiver.check) for r in rule.roles}
        )
        if not allowed:
            return f"gate {gate.id} allows no waiver of '{waiver.check}'"
        return f"may not waive '{waiver.check}' (needs role {' or '.join(allowed)})"
    if not waiver.reason.strip():
        return "a waiver needs a reason"
    longest = max(r.max_duration for r in rules)
    lasts = waiver.expires_at - waiver.at
    if lasts.total_seconds() <= 0:
        return "a waiver must end after it starts"
    if lasts > longest:
        return (
            f"a waiver of '{waiver.check}' for {format_duration(lasts)} lasts longer than the "
            f"policy allows ({format_duration(longest)} at most)"
        )
    return None


def valid_waivers(
    gate: Gate, project: str, waivers: list[Waiver], now: datetime, policies: PolicySet
) -> tuple[dict[str, WaiverNote], list[Ignored]]:
    """The waivers in force at ``now``, by check id, and those that are not, with why."""
    granted: dict[str, WaiverNote] = {}
    ignored: list[Ignored] = []
    for waiver in waivers:
        why = refusal(gate, project, waiver, policies)
        if why is None and now < waiver.at:
            why = f"waiver of '{waiver.check}' is not valid until {waiver.at:%Y-%m-%d %H:%M}Z"
        elif why is None and now >= waiver.expires_at:
            why = f"waiver of '{waiver.check}' expired {waiver.expires_at:%Y-%m-%d %H:%M}Z"
        if why is not None:
            ignored.append(Ignored(person=waiver.person, reason=why))
            continue
        person = policies.person(waiver.person)
        assert person is not None  # refusal() said it is known
        granted[waiver.check] = WaiverNote(
            person=person.id, reason=waiver.reason, expires_at=waiver.expires_at
        )
    return granted, ignored
