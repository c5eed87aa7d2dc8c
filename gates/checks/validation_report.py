"""``validation_report``: a data-validation report in the repo says the data passed.

Reads the JSON that Great Expectations (validation or checkpoint result) and Evidently (test
suite) write, without importing either package: the report is the evidence, not the tool.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gates.checks.base import Finding, Location, Params, register
from gates.checks.text import matching_files, parse_document
from gates.evidence import Evidence, PathKey


class ValidationReport(Params):
    path: str = Field(description="Path or glob of the report JSON; every match must pass.")


def _reads(params: ValidationReport) -> list[PathKey]:
    return [("files",)]


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings of a list a report should hold: a report written by hand or by another
    tool version may hold anything, and an odd entry is no result rather than a crash."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _great_expectations(report: dict[str, Any]) -> tuple[bool, str]:
    results = _dicts(report.get("results"))
    for run in _mapping(report.get("run_results")).values():
        results += _dicts(_mapping(_mapping(run).get("validation_result")).get("results"))
    failed = [r for r in results if not r.get("success")]
    names = []
    for result in failed[:3]:
        config = _mapping(result.get("expectation_config"))
        name = config.get("expectation_type") or config.get("type") or "expectation"
        column = _mapping(config.get("kwargs")).get("column")
        names.append(f"{name}({column})" if column else str(name))
    if report["success"]:
        return True, f"Great Expectations: {len(results)} expectation(s) passed"
    detail = f": {', '.join(names)}" if names else ""
    return (
        False,
        f"Great Expectations: {len(failed)} of {len(results)} expectation(s) failed{detail}",
    )


def _evidently(report: dict[str, Any]) -> tuple[bool, str]:
    tests = _dicts(report["tests"])
    failed = [t for t in tests if str(t.get("status", "")).upper() in {"FAIL", "ERROR"}]
    if not failed:
        return True, f"Evidently: {len(tests)} test(s) passed"
    names = ", ".join(str(t.get("name", "test")) for t in failed[:3])
    return False, f"Evidently: {len(failed)} of {len(tests)} test(s) failed: {names}"


def judge(report: Any) -> tuple[bool, str] | None:
    """(passed, summary) for a report in a known format, None for an unknown one."""
    if isinstance(report, dict) and isinstance(report.get("success"), bool):
        return _great_expectations(report)
    if isinstance(report, dict) and isinstance(report.get("tests"), list):
        return _evidently(report)
    return None


@register(
    "validation_report",
    "data-validation report (GE/Evidently JSON) passed",
    ValidationReport,
    _reads,
)
def run(params: ValidationReport, evidence: Evidence) -> Finding:
    expected = f"a passing validation report at {params.path}"
    reports = matching_files(evidence, params.path)
    if not reports:
        return Finding(False, expected, f"no report at {params.path}")
    for file in reports:
        parsed = parse_document(file)
        verdict = judge(parsed.value) if parsed.error is None else None
        if verdict is None:
            why = parsed.error or "not a Great Expectations or Evidently result"
            return Finding(
                False,
                expected,
                f"{file.path}: {why}",
                source=file.url,
                location=Location(file.path, parsed.line),
            )
        passed, summary = verdict
        if not passed:
            return Finding(
                False,
                expected,
                f"{file.path}: {summary}",
                source=file.url,
                location=Location(file.path),
            )
    return Finding(
        True,
        expected,
        summary if len(reports) == 1 else f"{len(reports)} reports passed",
        source=reports[0].url,
    )
