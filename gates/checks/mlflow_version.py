"""``mlflow_version``: the candidate model version is registered and packaged."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from gates.checks.base import Finding, Params, listing, register
from gates.evidence import Evidence, ModelVersion, PathKey

Property = Literal["ready", "signature", "input_example", "environment"]

_WORDS: dict[str, str] = {
    "ready": "status READY",
    "signature": "a signature",
    "input_example": "an input example",
    "environment": "an environment spec",
}


class MlflowVersion(Params):
    require: list[Property] = ["ready", "signature", "input_example", "environment"]

    @cached_property
    def expected(self) -> str:
        return "a registered model version with " + listing([_WORDS[p] for p in self.require])


def _missing(version: ModelVersion, prop: str) -> str | None:
    if prop == "ready" and version.status != "READY":
        return f"status {version.status}"
    if prop == "signature" and not (version.signature or {}).get("inputs"):
        return "no signature"
    if prop == "input_example" and not version.has_input_example:
        return "no input example"
    if prop == "environment" and not version.environment:
        return "no environment spec (conda.yaml, python_env.yaml or requirements.txt)"
    return None


def _reads(params: MlflowVersion) -> list[PathKey]:
    return [("mlflow", "version")]


@register(
    "mlflow_version",
    "MLflow model version is READY with signature, example, environment",
    MlflowVersion,
    _reads,
)
def run(params: MlflowVersion, evidence: Evidence) -> Finding:
    expected = params.expected
    version = evidence.mlflow.version
    if version is None:
        return Finding(False, expected, "no model version registered for this project")
    label = f"{version.name} v{version.version}"
    gaps = [gap for p in params.require if (gap := _missing(version, p))]
    if gaps:
        return Finding(False, expected, f"{label}: {'; '.join(gaps)}", source=version.url)
    return Finding(True, expected, f"{label} is READY and packaged", source=version.url)
