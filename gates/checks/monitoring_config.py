"""``monitoring_config``: the model's monitoring is written down, complete and valid.

A monitoring config names what to watch (metrics, drift checks, thresholds), who hears about
it (alert channel, owner) and what happens next (retraining, rollback); its format is
:class:`gates.monitoring.MonitoringConfigFile` (JSON Schema:
``policies/monitoring-config.schema.json``). It must refer to the registered model being
deployed, or it is monitoring something else: the project must name its registered models,
the config's ``model`` must be one of them, and when the registry was read it must be the
candidate version's model, which MLflow must really have. Its drift checks must watch columns
the model really takes as input (the registered version's signature), or they watch nothing.

``path`` is one file (``monitoring/config.yaml``, the default) or a glob for a config per
model (``monitoring/models/*.yaml``): then the config whose ``model`` is the candidate model
is the one validated, a config for a model the project does not have is reported, and
matching files without a ``model`` key (an Alertmanager config, say) are not configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydantic import Field

from gates.checks.base import Finding, Location, Params, listing, register
from gates.checks.text import is_glob, matching_files
from gates.evidence import Evidence, File, PathKey
from gates.monitoring import REQUIRED, Validated, validate

NO_MODELS = "the project names no registered model (mlflow.models in its Project file)"


class MonitoringConfig(Params):
    path: str = Field(
        default="monitoring/config.yaml",
        description="Path of the config file, or a glob for one config per model (the one "
        "whose `model` is the candidate model is checked).",
    )
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
    paths: list[PathKey] = [
        ("files",),
        ("project", "models"),
        ("mlflow", "model"),
        ("mlflow", "version", "name"),
    ]
    if params.drift_on_inputs:
        paths.append(("mlflow", "version", "signature"))
    return paths


@dataclass(frozen=True)
class _Config:
    file: File
    checked: Validated

    @property
    def model(self) -> str | None:
        model = self.checked.data.get("model")
        return str(model) if model not in (None, "") else None


def _candidate(evidence: Evidence) -> str | None:
    """The model being deployed: the registry's candidate version, else the project's first."""
    if evidence.mlflow.version is not None:
        return evidence.mlflow.version.name
    return evidence.mlflow.model or next(iter(evidence.project.models), None)


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
    candidate = _candidate(evidence)
    expected = f"a valid monitoring config at {params.path} with {listing(params.require)}"
    expected += f", for model {candidate}" if candidate else ", for the project's registered model"
    files = matching_files(evidence, params.path)
    if not files:
        return Finding(False, expected, f"no file matches {params.path}")
    configs = [
        _Config(f, _validated(f.content, tuple(params.require)))
        for f in files
        if f.content is not None
    ]
    if not configs:
        return Finding(False, expected, f"{files[0].path}: content not collected")
    if is_glob(params.path):
        picked = _pick(configs, candidate, evidence.project.models, params.path, expected)
        if isinstance(picked, Finding):
            return picked
    else:
        picked = configs[0]
    return _judge(picked, evidence, params, expected)


def _pick(
    configs: list[_Config], candidate: str | None, models: list[str], path: str, expected: str
) -> _Config | Finding:
    """The candidate model's config among those a glob matches."""
    named = [c for c in configs if c.model is not None]
    if not models:
        return Finding(False, expected, NO_MODELS)
    strangers = [c for c in named if c.model not in models]
    if strangers:
        first = strangers[0]
        return Finding(
            False,
            expected,
            f"{listing([f'{c.file.path} monitors {c.model!r}' for c in strangers])}: not a "
            f"registered model of the project ({listing(models)})",
            first.file.url,
            Location(first.file.path, 1),
        )
    mine = [c for c in named if c.model == candidate]
    if len(mine) > 1:
        return Finding(
            False,
            expected,
            f"{listing([c.file.path for c in mine])} all monitor {candidate}: keep one",
            mine[1].file.url,
            Location(mine[1].file.path, 1),
        )
    if mine:
        return mine[0]
    others = [f"{c.file.path} monitors {c.model}" for c in named]
    nameless = [c.file.path for c in configs if c.model is None]
    seen = others + ([f"{listing(nameless)} name no model"] if nameless else [])
    return Finding(False, expected, f"no config at {path} for {candidate} ({'; '.join(seen)})")


def _judge(config: _Config, evidence: Evidence, params: MonitoringConfig, expected: str) -> Finding:
    file, checked = config.file, config.checked

    def wrong(found: str, line: int = 1) -> Finding:
        return Finding(False, expected, found, file.url, Location(file.path, line))

    if checked.problems:
        first = checked.problems[0]
        more = f" (and {len(checked.problems) - 1} more)" if len(checked.problems) > 1 else ""
        if first.message.startswith("lacks "):
            return wrong(f"{file.path} {first.message}{more}", first.line)
        return wrong(f"{file.path}:{first.line}: {first.message}{more}", first.line)
    model, models = config.model, evidence.project.models
    if not models:
        return wrong(f"{file.path} monitors {model!r}, but {NO_MODELS}")
    if model not in models:
        return wrong(
            f"{file.path} monitors {model!r}, not a registered model of the project "
            f"({listing(models)})"
        )
    registry = evidence.mlflow
    if registry.version is not None and model != registry.version.name:
        return wrong(
            f"{file.path} monitors {model!r}, but the version being deployed is "
            f"{registry.version.name} v{registry.version.version}"
        )
    if registry.model == model and registry.version is None:
        return wrong(f"{file.path} monitors {model!r}, which has no version in the MLflow registry")
    if params.drift_on_inputs and (inputs := _input_columns(evidence)):
        label, columns = inputs
        strangers = [c for c in checked.drift_columns() if c not in columns]
        if strangers:
            return wrong(
                f"{file.path} drift checks {listing(strangers)}, not input(s) of {label} "
                f"({listing(sorted(columns))})"
            )
    return Finding(True, expected, f"{file.path} complete for {model}", source=file.url)
