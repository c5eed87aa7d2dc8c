"""``monitoring_signal``: monitoring is not only configured but actually reporting.

A config nobody runs is the classic "monitoring attached" lie; the first heartbeat or report
that reached phasegate is the proof.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from gates.checks.base import Finding, Params, listing, register
from gates.evidence import Evidence, PathKey


class MonitoringSignal(Params):
    kinds: list[Literal["heartbeat", "report", "alert"]] = ["heartbeat", "report"]

    @cached_property
    def expected(self) -> str:
        return f"at least one monitoring {listing(list(self.kinds)).replace(' and ', ' or ')}"


def _reads(params: MonitoringSignal) -> list[PathKey]:
    return [("monitoring", "signals")]


@register(
    "monitoring_signal", "a monitoring heartbeat or report has arrived", MonitoringSignal, _reads
)
def run(params: MonitoringSignal, evidence: Evidence) -> Finding:
    expected = params.expected
    signals = sorted(
        (s for s in evidence.monitoring.signals if s.kind in params.kinds),
        key=lambda s: s.received_at,
    )
    if not signals:
        return Finding(False, expected, "nothing received from monitoring yet")
    first = signals[0]
    return Finding(
        True,
        expected,
        f"{len(signals)} received, first {first.kind} at {first.received_at:%Y-%m-%d %H:%M}Z",
        source=first.url,
    )
