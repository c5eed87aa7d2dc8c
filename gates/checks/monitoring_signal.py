"""``monitoring_signal``: monitoring is not only configured but actually reporting.

A config nobody runs is the classic "monitoring attached" lie; the first heartbeat or report
that reached phasegate is the proof. Reports count wherever the monitoring job leaves them:
posted to ``/webhooks/monitoring/reports`` (``monitoring.signals``), or committed to the
repository at ``paths`` (Evidently JSON, read by :mod:`gates.evidently`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, model_validator

from gates import evidently
from gates.checks.base import Finding, Location, Params, listing, register
from gates.checks.text import matching_files, parse_document
from gates.evidence import Evidence, File, PathKey


class MonitoringSignal(Params):
    kinds: list[Literal["heartbeat", "report", "alert"]] = ["heartbeat", "report"]
    paths: list[str] = Field(
        default_factory=list,
        description="Globs of Evidently report JSON files in the repository that count as "
        "reports too (snapshot.json(), snapshot.dumps() or legacy report.json()).",
    )

    @model_validator(mode="after")
    def _paths_are_reports(self) -> MonitoringSignal:
        if self.paths and "report" not in self.kinds:
            raise ValueError("paths name report files: add 'report' to kinds, or drop paths")
        return self

    @cached_property
    def expected(self) -> str:
        kinds = listing(list(self.kinds)).replace(" and ", " or ")
        where = f" (reports posted to phasegate or at {listing(self.paths)})" if self.paths else ""
        return f"at least one monitoring {kinds}{where}"


def _reads(params: MonitoringSignal) -> list[PathKey]:
    return [("monitoring", "signals"), *([("files",)] if params.paths else [])]


@dataclass(frozen=True)
class _Committed:
    """A file at ``paths``: an Evidently report (its summary), or why it is none."""

    file: File
    summary: dict[str, Any] | None = None
    problem: str | None = None
    line: int = 1


def _committed(params: MonitoringSignal, evidence: Evidence) -> list[_Committed]:
    files = {f.path: f for pattern in params.paths for f in matching_files(evidence, pattern)}
    found = []
    for file in sorted(files.values(), key=lambda f: f.path):
        parsed = parse_document(file)
        if parsed.error is not None:
            found.append(_Committed(file, problem=parsed.error, line=parsed.line))
        elif not evidently.is_report(parsed.value):
            found.append(_Committed(file, problem=evidently.NOT_A_REPORT))
        else:
            found.append(_Committed(file, summary=evidently.summary(parsed.value)))
    return found


def _in_repo(reports: list[_Committed]) -> str:
    """``2 reports in the repository: a.json (2026-11-20 10:00:00), b.json``."""
    if not reports:
        return ""
    shown = [
        f"{r.file.path} ({stamp})" if (stamp := (r.summary or {}).get("timestamp")) else r.file.path
        for r in reports[:3]
    ]
    more = f" and {len(reports) - 3} more" if len(reports) > 3 else ""
    plural = "s" if len(reports) > 1 else ""
    return f"{len(reports)} report{plural} in the repository: {', '.join(shown)}{more}"


@register(
    "monitoring_signal", "a monitoring heartbeat or report has arrived", MonitoringSignal, _reads
)
def run(params: MonitoringSignal, evidence: Evidence) -> Finding:
    expected = params.expected
    signals = sorted(
        (s for s in evidence.monitoring.signals if s.kind in params.kinds),
        key=lambda s: s.received_at,
    )
    committed = _committed(params, evidence)
    reports = [c for c in committed if c.summary is not None]
    in_repo = _in_repo(reports)
    if signals:
        first = signals[0]
        found = (
            f"{len(signals)} received, first {first.kind} at {first.received_at:%Y-%m-%d %H:%M}Z"
        )
        return Finding(True, expected, "; ".join(filter(None, [found, in_repo])), first.url)
    if reports:
        return Finding(True, expected, in_repo, reports[0].file.url)
    found = "nothing received from monitoring yet"
    bad = [c for c in committed if c.problem is not None]
    if bad:
        return Finding(
            False,
            expected,
            f"{found}; {bad[0].file.path}: {bad[0].problem}",
            bad[0].file.url,
            Location(bad[0].file.path, bad[0].line),
        )
    if params.paths:
        found += f", and no report at {listing(params.paths)}"
    return Finding(False, expected, found)
