"""The monitoring config a project keeps in its repository, e.g. ``monitoring/config.yaml``.

It says what is watched (metrics, drift checks on the model's input columns, thresholds),
who hears about it (alert channel, owner) and what happens next (retraining, rollback). The
pydantic model below is the one definition: the ``monitoring_config`` check validates with
it, its required fields are the keys that check requires by default, and
``policies/monitoring-config.schema.json`` (editor autocompletion) is generated from it.

Validation reports every problem with the line it is on, as a person fixing the file needs.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError


class DriftCheck(BaseModel):
    """A drift test on one input column of the model."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, description="An input column of the model's signature.")
    test: str | None = Field(
        default=None, description="The statistical test, e.g. psi, ks, chi2, wasserstein."
    )
    threshold: float | None = Field(default=None, description="Drift score that raises an alert.")


def _column_only(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


Drift = Annotated[
    DriftCheck, BeforeValidator(_column_only, json_schema_input_type=str | DriftCheck)
]
"""A drift check, or just the column's name (the monitoring tool's default test and threshold)."""


class MonitoringConfigFile(BaseModel):
    """One model's monitoring, as written in the project repository."""

    model_config = ConfigDict(
        extra="allow",
        title="phasegate monitoring config",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "examples": [
                {
                    "model": "churn-classifier",
                    "owner": "dave",
                    "alert_channel": "#churn-model-alerts",
                    "metrics": ["auc_weekly", "precision_at_5pct"],
                    "drift": [{"column": "tenure_months", "test": "psi", "threshold": 0.2}],
                    "thresholds": {"auc_weekly": 0.82},
                    "retraining": "weekly, Monday 02:00 UTC",
                    "rollback": "churn-classifier@champion-previous",
                }
            ],
        },
    )

    model: str = Field(min_length=1, description="The registered model (MLflow) monitored.")
    owner: str = Field(min_length=1, description="Who answers for the model in production.")
    alert_channel: str = Field(min_length=1, description="Where alerts go, e.g. a Slack channel.")
    metrics: list[str] = Field(min_length=1, description="Quality metrics watched in production.")
    drift: list[Drift] = Field(
        min_length=1,
        description="Drift checks: an input column name, or a column with its test and threshold.",
    )
    thresholds: dict[str, float] = Field(
        min_length=1, description="Metric name -> the value that raises an alert."
    )
    retraining: str = Field(min_length=1, description="When or on what the model is retrained.")
    rollback: str = Field(
        min_length=1, description="What to roll back to, e.g. churn-classifier@champion-previous."
    )


REQUIRED: list[str] = [
    name for name, field in MonitoringConfigFile.model_fields.items() if field.is_required()
]
"""The keys a monitoring config must have (the ``monitoring_config`` check's default)."""


def json_schema() -> dict[str, Any]:
    """What ``policies/monitoring-config.schema.json`` holds."""
    return MonitoringConfigFile.model_json_schema()


@dataclass(frozen=True)
class Problem:
    line: int
    message: str


@dataclass(frozen=True)
class Validated:
    data: dict[str, Any]  # the document as plain values ({} when it is not a mapping)
    problems: list[Problem]

    def drift_columns(self) -> list[str]:
        """The columns drift is checked on (meaningful once there are no problems)."""
        drift = self.data.get("drift") or []
        return [d if isinstance(d, str) else str(d.get("column")) for d in drift]


def validate(content: str, require: list[str] | None = None) -> Validated:
    """Parse and validate a config; a key outside ``require`` (default: :data:`REQUIRED`) may
    be absent, but when present it must have the documented shape."""
    require = REQUIRED if require is None else require
    try:
        tree = YAML(typ="rt").load(io.StringIO(content))
    except YAMLError as exc:
        return Validated({}, [_yaml_problem(exc, content)])
    if not isinstance(tree, CommentedMap):
        return Validated({}, [Problem(1, "not a mapping of settings")])
    data = _plain(tree)
    problems = _missing(data, require, tree)
    lacking = {key for key in require if _empty(data.get(key))}  # said once, by _missing
    try:
        config = MonitoringConfigFile.model_validate(data)
    except ValidationError as exc:
        config = None
        problems += [
            Problem(_line(tree, err["loc"]), _describe(err))
            for err in exc.errors(include_url=False)
            if err["type"] != "missing" and not (err["loc"] and err["loc"][0] in lacking)
        ]
    if config is not None:
        problems += [
            Problem(_line(tree, ("thresholds", name)), f"thresholds.{name}: not a metric watched")
            for name in config.thresholds
            if name not in config.metrics
        ]
    return Validated(data, problems)


def _yaml_problem(exc: YAMLError, content: str) -> Problem:
    """Where and why the YAML does not parse. Most errors carry a mark; a character YAML does
    not allow at all (a NUL or ESC byte, say) is a ``ReaderError`` with only an offset."""
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return Problem(line, f"invalid YAML: {exc.problem or exc.context}")
    if isinstance(exc, ReaderError):
        line = content.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character
        code = char if isinstance(char, int) else ord(char) if isinstance(char, str) else 0
        return Problem(line, f"invalid YAML: control character U+{code:04X} is not allowed")
    return Problem(1, f"invalid YAML: {exc}")


def _empty(value: Any) -> bool:
    return value in (None, "", [], {})


def _missing(data: dict[str, Any], require: list[str], tree: CommentedMap) -> list[Problem]:
    empty = [key for key in require if _empty(data.get(key))]
    if not empty:
        return []
    unknown = [k for k in data if k not in MonitoringConfigFile.model_fields]
    typos = {
        key: close[0]
        for key in empty
        if (close := difflib.get_close_matches(key, unknown, n=1, cutoff=0.75))
    }
    named = ", ".join(
        f"{key} (is '{typos[key]}' a typo?)" if key in typos else key for key in empty
    )
    lines = [_line(tree, (typos[k],)) for k in empty if k in typos]
    return [Problem(min(lines, default=1), f"lacks {named}")]


def _describe(err: dict[str, Any]) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    given = err.get("input")
    shown = f" (found {given!r})" if not isinstance(given, dict | list) else ""
    return f"{where}: {err['msg']}{shown}"


def _line(tree: Any, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest node along ``loc`` that the YAML has."""
    line = tree.lc.line
    node = tree
    for step in loc:
        if isinstance(node, CommentedMap) and step in node:
            line = node.lc.value(step)[0]
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and step < len(node):
            line = node.lc.item(step)[0]
        else:
            break
        node = node[step]
    return line + 1


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node
