"""``monitoring_config``: the model's monitoring is written down and complete.

A monitoring config names what to watch (metrics, drift checks, thresholds), who hears about
it (alert channel, owner) and what happens next (retraining, rollback). It must refer to one
of the project's registered models, or it is monitoring something else.
"""

from __future__ import annotations

from pydantic import Field

from gates.checks.base import Finding, Location, Params, listing, register
from gates.checks.text import matching_files, parse_document
from gates.evidence import Evidence, PathKey

REQUIRED = [
    "model",
    "owner",
    "alert_channel",
    "metrics",
    "drift",
    "thresholds",
    "retraining",
    "rollback",
]


class MonitoringConfig(Params):
    path: str = Field(default="monitoring/*.yaml", description="Path or glob of the config file.")
    require: list[str] = Field(default_factory=lambda: list(REQUIRED))


def _reads(params: MonitoringConfig) -> list[PathKey]:
    return [("files",), ("project", "models")]


@register(
    "monitoring_config",
    "monitoring config is present, complete and names the model",
    MonitoringConfig,
    _reads,
)
def run(params: MonitoringConfig, evidence: Evidence) -> Finding:
    expected = f"a monitoring config at {params.path} with {listing(params.require)}"
    models = evidence.project.models
    if models:
        expected += f", for model {listing(models)}"
    configs = matching_files(evidence, params.path)
    if not configs:
        return Finding(False, expected, f"no file matches {params.path}")
    file = configs[0]
    parsed = parse_document(file)
    if parsed.error or not isinstance(parsed.value, dict):
        why = parsed.error or "not a mapping of settings"
        return Finding(
            False,
            expected,
            f"{file.path}: {why}",
            source=file.url,
            location=Location(file.path, parsed.line),
        )
    config = parsed.value
    missing = [key for key in params.require if config.get(key) in (None, "", [], {})]
    if missing:
        return Finding(
            False,
            expected,
            f"{file.path} lacks {listing(missing)}",
            source=file.url,
            location=Location(file.path),
        )
    if models and config.get("model") not in models:
        return Finding(
            False,
            expected,
            f"{file.path} monitors {config.get('model')!r}",
            source=file.url,
            location=Location(file.path),
        )
    return Finding(
        True, expected, f"{file.path} complete for {config.get('model')}", source=file.url
    )
