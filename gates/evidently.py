"""Evidently report JSON, read without the Evidently package: the report is the evidence.

Shared by the receiver (a monitoring job posts a report) and the ``monitoring_signal`` check
(a report committed to the repository), so a report means the same wherever it is found.
Three shapes are understood, as Evidently writes them:

- ``snapshot.json()`` / ``snapshot.save_json()`` (Evidently 0.7+): ``{"metrics": [...],
  "tests": [...]}``; each metric names its kind by ``metric_id`` (``"ValueDrift(column=x,
  method=K-S p_value,threshold=0.05)"``; earlier 0.7 releases: ``metric_name`` plus a
  ``config`` mapping). No metadata: Evidently leaves it out of this shape.
- ``snapshot.dumps()`` (Evidently 0.7+, what its workspace stores): ``metric_results`` by id,
  ``top_level_metrics``, ``timestamp`` and the report's ``metadata`` (e.g. ``model_id`` from
  ``Report(..., model_id=...)``), which may say whose report it is.
- legacy ``report.json()`` (Evidently < 0.7): ``{"version", "timestamp", "metrics":
  [{"metric": name, "result": {...}}]}``.
"""

from __future__ import annotations

import re
from typing import Any

METADATA_KEYS = {"project": ("project",), "model": ("model", "model_id")}
"""Evidence keys and the ``metadata`` keys that give them (``model_id``: Evidently's own)."""


def is_report(document: Any) -> bool:
    """Whether a parsed JSON document is an Evidently report in a known shape."""
    if not isinstance(document, dict):
        return False
    if isinstance(document.get("metric_results"), dict):
        return True
    return isinstance(document.get("metrics"), list) or isinstance(document.get("tests"), list)


NOT_A_REPORT = (
    "not an Evidently report: expected a 'metrics' or 'tests' list (snapshot.json()) or "
    "'metric_results' (snapshot.dumps())"
)


def names(document: dict[str, Any]) -> dict[str, str]:
    """The project and model the report's own ``metadata`` names (only ``dumps()`` has it)."""
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    found = {}
    for key, sources in METADATA_KEYS.items():
        value = next((metadata[s] for s in sources if metadata.get(s) not in (None, "")), None)
        if value is not None:
            found[key] = str(value)
    return found


def summary(document: dict[str, Any]) -> dict[str, Any]:
    """The gist of a report, in any of the shapes: drifted columns, drift share, whether the
    dataset drifted, and how many tests failed.

    Total over any JSON: a field of an unexpected type is passed over, never raised on, since
    the receiver keeps whatever passes :func:`is_report` and every later evaluation of the
    monitoring window reads it again."""
    report = _flattened(document)
    metrics = _dicts(report.get("metrics"))
    tests = _dicts(report.get("tests"))
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
    if isinstance(document.get("timestamp"), str):
        out["timestamp"] = document["timestamp"]
    return out


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The mappings in a list; nothing from anything else."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _flattened(document: dict[str, Any]) -> dict[str, Any]:
    """A ``dumps()`` snapshot as the ``{"metrics", "tests"}`` shape ``json()`` gives."""
    results = document.get("metric_results")
    if not isinstance(results, dict):
        return document
    top = document.get("top_level_metrics")
    ids = (
        [i for i in top if isinstance(i, str) and i in results]
        if isinstance(top, list)
        else list(results)
    )
    metrics, tests = [], []
    for metric_id in ids:
        result = results[metric_id]
        if not isinstance(result, dict):
            continue
        location = result.get("metric_value_location")
        metric = location.get("metric") if isinstance(location, dict) else None
        config = metric.get("params") if isinstance(metric, dict) else None
        value = result.get("value")
        if isinstance(result.get("count"), dict) and isinstance(result.get("share"), dict):
            value = {"count": result["count"].get("value"), "share": result["share"].get("value")}
        metrics.append({"id": metric_id, "config": config, "value": value})
        tests += _dicts(result.get("tests"))
    return {"metrics": metrics, "tests": tests}


def _drift(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Evidently 0.7+: ``DriftedColumnsCount`` (value ``{count, share}``, config
    ``drift_share``) and one ``ValueDrift`` per column (a score; a p-value drifts when below
    its threshold, a distance when at or above it)."""
    out: dict[str, Any] = {}
    drifted = []
    for metric in metrics:
        config = _config(metric)
        name = str(config.get("type") or "")
        value = metric.get("value")
        if "DriftedColumnsCount" in name and isinstance(value, dict):
            share = value.get("share")
            out["drifted_share"] = share
            limit = config.get("drift_share", 0.5)
            if isinstance(share, int | float) and isinstance(limit, int | float):
                out["dataset_drift"] = share >= limit
        elif "ValueDrift" in name and isinstance(value, int | float):
            column, method = config.get("column"), str(config.get("method") or "").lower()
            threshold = config.get("threshold")
            if column and isinstance(threshold, int | float):
                is_p_value = "p_value" in method or "p-value" in method
                if value < threshold if is_p_value else value >= threshold:
                    drifted.append(str(column))
    if drifted or "drifted_share" in out:
        out["drifted_columns"] = sorted(drifted)
    return out


_CALL = re.compile(r"^\s*(\w+)\((.*)\)\s*$", re.S)
_PARAM = re.compile(r"(?:^|,)\s*(\w+)=")


def _config(metric: dict[str, Any]) -> dict[str, Any]:
    """A metric's kind and parameters: its ``config`` mapping where the shape has one, read
    from its id text (``"ValueDrift(column=x,method=K-S p_value,threshold=0.05)"``) otherwise;
    where both say something, the mapping wins."""
    config = dict(metric["config"]) if isinstance(metric.get("config"), dict) else {}
    text = metric.get("metric_id") or metric.get("metric_name")
    match = _CALL.match(text) if isinstance(text, str) else None
    if match is None:
        return config
    kind, inner = match.groups()
    keys = list(_PARAM.finditer(inner))
    parsed: dict[str, Any] = {"type": kind}
    for this, after in zip(keys, [*keys[1:], None], strict=True):
        raw = inner[this.end() : after.start() if after else len(inner)].strip()
        try:
            parsed[this.group(1)] = float(raw)
        except ValueError:
            parsed[this.group(1)] = raw
    return {**parsed, **config}


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
            drifted |= {
                c for c, r in by_column.items() if isinstance(r, dict) and r.get("drift_detected")
            }
        if name == "ColumnDriftMetric" and result.get("drift_detected"):
            drifted.add(str(result.get("column_name")))
    if drifted or out:
        out["drifted_columns"] = sorted(drifted)
    return out
