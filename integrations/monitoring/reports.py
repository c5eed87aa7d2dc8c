"""Evidently report JSON posted to ``POST /webhooks/monitoring/reports``, as phasegate events.

A monitoring job posts the report it just made, authenticated with the alerts bearer token.
The report is read as JSON by :mod:`gates.evidently` (phasegate does not depend on the
Evidently package; the same parser reads reports committed to a repository) and summed up in
what a person or a policy wants to know: which columns drifted, the share of drifted columns,
whether the dataset drifted, and how many tests failed.

Which project it belongs to comes from the query string (``?model=churn-classifier`` or
``?project=churn-model``) or, failing that, the report's own ``metadata`` — which only
``snapshot.dumps()`` carries (``model``, or Evidently's ``model_id``, or ``project``);
``snapshot.json()`` leaves metadata out, so post that one with the query string.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from gates import evidently
from gates.events import Event

KIND = "report"
"""The inbox kind of a posted report (its source is ``monitoring``, like alerts)."""

ROUTING_KEYS = ("project", "model")


class NotAReport(ValueError):
    """The body is not an Evidently report, or names no project or model."""


def payload(report: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    """What the inbox keeps: the report and the project or model it belongs to."""
    if not evidently.is_report(report):
        raise NotAReport(evidently.NOT_A_REPORT)
    named = evidently.names(report)
    subject = {k: str(v) for k in ROUTING_KEYS if (v := query.get(k) or named.get(k))}
    if not subject:
        raise NotAReport(
            "the report names no project or model: post it to "
            "/webhooks/monitoring/reports?model=<registered model> (or ?project=<key>); "
            "a snapshot.dumps() report may name it in its metadata instead "
            "(model_id, model or project)"
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
            payload={"summary": evidently.summary(report)},
        )
    ]
