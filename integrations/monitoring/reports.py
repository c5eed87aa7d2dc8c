"""Evidently report JSON posted to ``POST /webhooks/monitoring/reports``, as phasegate events.

A monitoring job posts the report it just made (``snapshot.json()`` in Evidently 0.7+, or a
legacy ``report.json()``), authenticated with the alerts bearer token. The report is read as
JSON — phasegate does not depend on the Evidently package — and summed up in what a person or
a policy wants to know: which columns drifted, the share of drifted columns, whether the
dataset drifted, and how many tests failed.

Which project it belongs to comes from the query string (``?model=churn-classifier`` or
``?project=churn-model``) or, failing that, the report's own ``metadata`` (``project`` /
``model`` keys), so a report is routed like an alert is.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from gates.events import Event

KIND = "report"
"""The inbox kind of a posted report (its source is ``monitoring``, like alerts)."""

ROUTING_KEYS = ("project", "model")


class NotAReport(ValueError):
    """The body is not an Evidently report, or names no project or model."""


def payload(report: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    """What the inbox keeps: the report and the project or model it belongs to."""
    if not isinstance(report.get("metrics"), list) and not isinstance(report.get("tests"), list):
        raise NotAReport("not an Evidently report: expected a 'metrics' or 'tests' list")
    metadata = report.get("metadata") if isinstance(report.get("metadata"), dict) else {}
    subject = {k: str(v) for k in ROUTING_KEYS if (v := query.get(k) or metadata.get(k))}
    if not subject:
        raise NotAReport(
            "the report names no project or model: post it to "
            "/webhooks/monitoring/reports?model=<registered model> (or ?project=<key>), "
            "or put model/project in the report's metadata"
        )
    return {"subject": subject, "report": report}


def delivery_id(stored: dict[str, Any]) -> str:
    """The same report posted twice (a retried job) is one delivery."""
    canonical = json.dumps(stored, sort_keys=True, separators=(",", ":"))
    return "report-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def normalise(stored: dict[str, Any], received_at: datetime) -> list[Event]:
    report = stored.get("report") or {}
    return [
        Event(
            source="monitoring",
            kind=f"{KIND}.received",
            subject=dict(stored.get("subject") or {}),
            occurred_at=received_at,
            payload={"summary": summary(report)},
        )
    ]


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The gist of a report, in either Evidently format."""
    metrics = [m for m in report.get("metrics") or [] if isinstance(m, dict)]
    tests = [t for t in report.get("tests") or [] if isinstance(t, dict)]
    legacy = any("metric" in m and "result" in m for m in metrics)
    drift = _legacy_drift(metrics) if legacy else _drift(metrics)
    failed = [t for t in tests if str(t.get("status", "")).upper() in {"FAIL", "ERROR"}]
    out: dict[str, Any] = {
        "format": "evidently-legacy" if legacy else "evidently",
        "metrics": len(metrics),
        **drift,
    }
    if tests:
        out["tests"] = {"total": len(tests), "failed": len(failed)}
        out["failed_tests"] = [str(t.get("name", "test")) for t in failed[:10]]
    if isinstance(report.get("timestamp"), str):
        out["timestamp"] = report["timestamp"]
    return out


def _drift(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Evidently 0.7+: ``DriftedColumnsCount`` (value ``{count, share}``, config
    ``drift_share``) and one ``ValueDrift`` per column (a score; a p-value drifts when below
    its threshold, a distance when at or above it)."""
    out: dict[str, Any] = {}
    drifted = []
    for metric in metrics:
        config = metric.get("config") if isinstance(metric.get("config"), dict) else {}
        name = str(config.get("type") or metric.get("metric_name") or "")
        value = metric.get("value")
        if "DriftedColumnsCount" in name and isinstance(value, dict):
            share = value.get("share")
            out["drifted_share"] = share
            limit = config.get("drift_share", 0.5)
            if isinstance(share, int | float) and isinstance(limit, int | float):
                out["dataset_drift"] = share >= limit
        elif "ValueDrift" in name and isinstance(value, int | float):
            column = config.get("column") or _column(str(metric.get("metric_name", "")))
            method = str(config.get("method") or metric.get("metric_name") or "").lower()
            threshold = config.get("threshold")
            if column and isinstance(threshold, int | float):
                is_p_value = "p_value" in method or "p-value" in method
                if value < threshold if is_p_value else value >= threshold:
                    drifted.append(column)
    if drifted or "drifted_share" in out:
        out["drifted_columns"] = sorted(drifted)
    return out


def _legacy_drift(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Evidently < 0.7: ``DatasetDriftMetric``, ``DataDriftTable`` and ``ColumnDriftMetric``
    results carry ``dataset_drift`` / ``drift_detected`` flags."""
    out: dict[str, Any] = {}
    drifted: set[str] = set()
    for metric in metrics:
        name, result = str(metric.get("metric")), metric.get("result")
        if not isinstance(result, dict):
            continue
        if name == "DatasetDriftMetric":
            out["dataset_drift"] = bool(result.get("dataset_drift"))
            out["drifted_share"] = result.get("share_of_drifted_columns")
        by_column = result.get("drift_by_columns")
        if isinstance(by_column, dict):
            drifted |= {c for c, r in by_column.items() if (r or {}).get("drift_detected")}
        if name == "ColumnDriftMetric" and result.get("drift_detected"):
            drifted.add(str(result.get("column_name")))
    if drifted or out:
        out["drifted_columns"] = sorted(drifted)
    return out


def _column(metric_name: str) -> str | None:
    match = re.search(r"column=([^,)]+)", metric_name)
    return match.group(1) if match else None
