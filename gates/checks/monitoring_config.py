"""``monitoring_config``: the model's monitoring is written down, complete and valid.

A monitoring config names what to watch (metrics, drift checks, thresholds), who hears about
it (alert channel, owner) and what happens next (retraining, rollback); its format is
:class:`gates.monitoring.MonitoringConfigFile` (JSON Schema:
``policies/monitoring-config.schema.json``). It must refer to one of the project's registered
models, or it is monitoring something else, and its drift checks must watch columns the
model really takes as input (the registered version's signature), or they watch nothing.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from gates.checks.base import Finding, Location, Params, listing, register
from gates.checks.text import matching_files
from gates.evidence import Evidence, PathKey
from gates.monitoring import REQUIRED, Validated, validate


class MonitoringConfig(Params):
    path: str = Field(default="monitoring/*.yaml", description="Path or glob of the config file.")
    require: list[str] = Field(
        default_factory=lambda: list(REQUIRED),
        description="Keys that must be present and filled; present keys are always validated.",
    )
    drift_on_inputs: bool = Field(
        default=True,
        description="Drift checks must name input columns of the model version's signature "
        "(checked when the version has one).",
    )


@lru_cache(maxsize=256)
def _validated(content: str, require: tuple[str, ...]) -> Validated:
    """Parsing YAML with positions is slow; the same file is checked at every evaluation."""
    return validate(content, list(require))


def _reads(params: MonitoringConfig) -> list[PathKey]:
    paths: list[PathKey] = [("files",), ("project", "models")]
    if params.drift_on_inputs:
        paths.append(("mlflow", "version", "signature"))
    return paths


def _input_columns(evidence: Evidence) -> tuple[str, set[str]] | None:
    version = evidence.mlflow.version
    inputs = (version.signature or {}).get("inputs") if version else None
    names = {str(c["name"]) for c in inputs or [] if isinstance(c, dict) and c.get("name")}
    return (f"{version.name} v{version.version}", names) if version and names else None


@register(
    "monitoring_config",
    "monitoring config is present, complete and names the model",
    MonitoringConfig,
    _reads,
)
def run(params: MonitoringConfig, evidence: Evidence) -> Finding:
    expected = f"a valid monitoring config at {params.path} with {listing(params.require)}"
    models = evidence.project.models
    if models:
        expected += f", for model {listing(models)}"
    configs = matching_files(evidence, params.path)
    if not configs:
        return Finding(False, expected, f"no file matches {params.path}")
    file = configs[0]

    def wrong(found: str, line: int = 1) -> Finding:
        return Finding(False, expected, found, file.url, Location(file.path, line))

    if file.content is None:
        return wrong(f"{file.path}: content not collected")
    checked = _validated(file.content, tuple(params.require))
    if checked.problems:
        first = checked.problems[0]
        more = f" (and {len(checked.problems) - 1} more)" if len(checked.problems) > 1 else ""
        if first.message.startswith("lacks "):
            return wrong(f"{file.path} {first.message}{more}", first.line)
        return wrong(f"{file.path}:{first.line}: {first.message}{more}", first.line)
    model = checked.data.get("model")
    if models and model not in models:
        return wrong(f"{file.path} monitors {model!r}")
    if params.drift_on_inputs and (inputs := _input_columns(evidence)):
        label, columns = inputs
        strangers = [c for c in checked.drift_columns() if c not in columns]
        if strangers:
            return wrong(
                f"{file.path} drift checks {listing(strangers)}, not input(s) of {label} "
                f"({listing(sorted(columns))})"
            )
    return Finding(True, expected, f"{file.path} complete for {model}", source=file.url)
