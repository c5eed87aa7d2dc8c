"""Where a project may go next: forward through a passed gate, back on a matching event.

Pure decisions over the lifecycle policy; recording them (with the evaluation or event that
caused them) is the store's job, so a move is never made without a trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gates import cel
from gates.policy import Lifecycle, Regression
from gates.result import GateResult


@dataclass(frozen=True)
class Move:
    kind: Literal["advance", "regress"]
    from_phase: str
    to_phase: str
    reason: str
    rule: str | None = None


def advance(lifecycle: Lifecycle, phase: str, result: GateResult) -> Move | None:
    """The forward move ``result`` allows from ``phase``, if it is that phase's gate.

    A gate in ``warn`` or ``shadow`` mode never blocks, so it lets the project through
    whatever it found; the reason says so, so nobody mistakes it for a pass.
    """
    transition = lifecycle.transition_from(phase)
    if transition is None or transition.gate != result.gate or result.blocking:
        return None
    reason = f"gate {result.gate} passed"
    if result.status != "passed":
        reason = f"gate {result.gate} is in {result.mode} mode ({result.summary})"
    return Move("advance", phase, transition.to, reason)


def regressions_from(lifecycle: Lifecycle, phase: str) -> list[Regression]:
    """The regression rules that can send a project back from ``phase`` (none, for most)."""
    return [rule for rule in lifecycle.regressions if phase in rule.from_]


def regress(
    lifecycle: Lifecycle,
    phase: str,
    event: Mapping[str, Any],
    last_fired: Mapping[str, datetime],
    now: datetime,
) -> Move | None:
    """The regression an event triggers in ``phase``, unless its rule is held down.

    ``event`` is what the rule's ``when`` sees as ``event`` (source, kind, labels, payload);
    ``last_fired`` holds when each rule last moved this project, for the hold-down that
    keeps a flapping alert from bouncing the project back and forth.
    """
    bound = cel.bind({"event": dict(event)}, env="event")
    for rule in regressions_from(lifecycle, phase):
        matched = cel.run_bool(rule.when, bound, env="event")
        if matched.error or not matched.value:
            continue
        last = last_fired.get(rule.id)
        if last is not None and now - last < rule.hold_down:
            continue
        why = rule.description or rule.when
        return Move("regress", phase, rule.to, f"regression {rule.id}: {why}", rule.id)
    return None
