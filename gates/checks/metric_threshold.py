"""``metric_threshold``: the candidate's primary metric meets the Ask and beats the champion.

By default the metric, its threshold and its direction come from the Ask issue
(``ask.primary_metric``): the success criterion stated when the problem was framed is the
one the model is held to, not a number picked when the model is ready.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gates.checks.base import Finding, Params, register
from gates.evidence import Evidence, PathKey


class MetricThreshold(Params):
    metric: str | None = Field(
        default=None, description="Run metric; default: the Ask's primary metric."
    )
    threshold: float | None = Field(default=None, description="Default: the Ask's threshold.")
    direction: Literal["higher", "lower"] | None = None
    beat_champion: bool = Field(default=True, description="Also at least match the champion.")
    min_improvement: float = Field(default=0.0, ge=0, description="Margin over the champion.")


def _reads(params: MetricThreshold) -> list[PathKey]:
    return [("ask", "primary_metric"), ("mlflow", "run", "metrics"), ("mlflow", "champion")]


def _at_least(value: float, bar: float, direction: str) -> bool:
    return value >= bar if direction == "higher" else value <= bar


@register(
    "metric_threshold",
    "primary metric meets the Ask's threshold and the champion",
    MetricThreshold,
    _reads,
)
def run(params: MetricThreshold, evidence: Evidence) -> Finding:
    ask = evidence.ask.primary_metric
    metric = params.metric or (ask.name if ask else None)
    threshold = (
        params.threshold if params.threshold is not None else (ask.threshold if ask else None)
    )
    direction = params.direction or (ask.direction if ask else "higher")
    if metric is None or threshold is None:
        return Finding(
            False,
            "a primary metric and threshold stated in the Ask issue",
            "the Ask states no primary metric",
            source=evidence.ask.url,
        )
    sign = "≥" if direction == "higher" else "≤"
    expected = f"{metric} {sign} {threshold:g}"
    champion = evidence.mlflow.champion if params.beat_champion else None
    champion_value = champion.metrics.get(metric) if champion else None
    if champion_value is not None:
        margin = params.min_improvement if direction == "higher" else -params.min_improvement
        bar = f"{champion_value:g}" + (f"{margin:+g}" if margin else "")
        expected += f" and {sign} champion v{champion.version} ({bar})"
    run_ = evidence.mlflow.run
    if run_ is None or metric not in run_.metrics:
        where = f"run {run_.id}" if run_ else "no run linked to the model version"
        return Finding(
            False, expected, f"{metric} not logged ({where})", source=run_.url if run_ else None
        )
    value = run_.metrics[metric]
    found = f"{metric} = {value:g}"
    ok = _at_least(value, threshold, direction)
    if champion_value is not None:
        ok = ok and _at_least(value, champion_value + margin, direction)
        found += f" (champion v{champion.version}: {champion_value:g})"
    return Finding(ok, expected, found, source=run_.url)
