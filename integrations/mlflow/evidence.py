"""Model-registry evidence: the candidate model version, its run, and the champion.

The **candidate** is the newest version (highest number) of the project's first registered
model (``Project.mlflow.models[0]``): registering a version is how a team proposes it, and a
newer registration replaces the proposal. Once the candidate is promoted (the champion alias
moved onto it), candidate and champion are the same version, and a comparison of it with
itself passes — the gate that needed the comparison is behind the project by then.

The **champion** is the version behind ``Project.mlflow.champion_alias``; the candidate's
metrics are compared with its run's metrics.

What the gate reads that the registry response does not hold comes from the version's model
artifacts: the signature, input example and flavors from ``MLmodel``, and which environment
files (``conda.yaml``, ``python_env.yaml``, ``requirements.txt``) are really there.

A typical collection costs 9 REST calls: the registered model, the version, ``MLmodel``,
three environment files, the run, and the champion's version and run (the last two are
skipped when the candidate is the champion, all but the first when nothing is registered).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gates.evidence import MlflowEvidence
from gates.policy import Project
from integrations.mlflow.client import MlflowClient, MlflowConfigError, MlflowError

log = logging.getLogger("phasegate.mlflow")

ENVIRONMENT_FILES = ("conda.yaml", "python_env.yaml", "requirements.txt")


def mlflow_source(environ: Mapping[str, str]) -> MlflowSource | MisconfiguredMlflow | None:
    """The ``mlflow.*`` source MLflow's own variables describe: none when
    ``MLFLOW_TRACKING_URI`` is unset; one that says why for every project using MLflow when the
    variables cannot work (logged here, once per process that builds its sources), so a typo
    or MLflow's usual local ``file:./mlruns`` makes mlflow checks ``error`` instead of failing
    every flow, also for projects that do not use MLflow."""
    if not environ.get("MLFLOW_TRACKING_URI"):
        return None
    try:
        return MlflowSource(MlflowClient.from_environment(environ))
    except MlflowConfigError as exc:
        log.error("MLflow evidence unavailable: %s", exc)
        return MisconfiguredMlflow(str(exc))


class MisconfiguredMlflow:
    """``mlflow.*`` when the MLflow variables cannot work: the reason, as ``unavailable``."""

    name = "mlflow"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def collect(self, project: Project, pull_request: int | None = None) -> dict[str, Any]:
        return {} if project.mlflow is None else {"unavailable": {"mlflow": self.reason}}


class MlflowSource:
    """An :class:`~integrations.sources.EvidenceSource` for ``mlflow.*``."""

    name = "mlflow"

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def collect(self, project: Project, pull_request: int | None = None) -> dict[str, Any]:
        """The same for every pull request: the registry knows versions, not PRs."""
        if project.mlflow is None:
            return {}
        model = project.mlflow.models[0]
        started, calls = time.perf_counter(), self.client.calls
        try:
            facts = self._facts(model, project.mlflow.champion_alias)
        except MlflowError as exc:
            log.warning("%s: MLflow evidence unavailable: %s", project.key, exc)
            return {"unavailable": {"mlflow": str(exc)}}
        log.info(
            "%s: MLflow evidence for %s in %d REST calls, %.0f ms",
            project.key,
            model,
            self.client.calls - calls,
            (time.perf_counter() - started) * 1000,
        )
        return {"mlflow": MlflowEvidence.model_validate(facts).model_dump(mode="json")}

    def _facts(self, model: str, champion_alias: str) -> dict[str, Any]:
        registered = self.client.registered_model(model)
        versions = (registered or {}).get("latest_versions") or []
        if not versions:
            return {"model": model}
        newest = max(versions, key=lambda v: int(v["version"]))["version"]
        version = self.client.model_version(model, newest)
        run = self._run(version.get("run_id"))
        aliases = {a["alias"]: a["version"] for a in registered.get("aliases", [])}
        champion = aliases.get(champion_alias)
        facts: dict[str, Any] = {
            "model": model,
            "version": self._version(version, run),
            "run": _run_facts(run, self.client) if run else None,
        }
        if champion == newest:
            facts["champion"] = {
                "version": champion,
                "url": facts["version"]["url"],
                "metrics": facts["run"]["metrics"] if run else {},
            }
        elif champion is not None:
            facts["champion"] = self._champion(model, champion)
        return facts

    def _version(self, version: dict[str, Any], run: dict[str, Any] | None) -> dict[str, Any]:
        name, number = version["name"], version["version"]
        mlmodel = self._mlmodel(name, number)
        env = [
            f
            for f in ENVIRONMENT_FILES
            if mlmodel and self.client.model_version_artifact(name, number, f) is not None
        ]
        return {
            "name": name,
            "version": number,
            "status": version.get("status") or "UNKNOWN",
            "url": self.client.version_url(name, number),
            "run_id": version.get("run_id") or None,
            # Open-source MLflow leaves a version's user_id empty; the run says who trained it.
            "user_id": version.get("user_id") or (run or {}).get("info", {}).get("user_id"),
            "aliases": list(version.get("aliases", [])),
            "tags": {t["key"]: t.get("value", "") for t in version.get("tags", [])},
            "signature": _signature(mlmodel),
            "has_input_example": bool(mlmodel and mlmodel.get("saved_input_example_info")),
            "flavors": sorted((mlmodel or {}).get("flavors") or {}),
            "environment": env,
        }

    def _mlmodel(self, name: str, version: str) -> dict[str, Any] | None:
        raw = self.client.model_version_artifact(name, version, "MLmodel")
        if raw is None:
            return None
        try:
            parsed = YAML(typ="safe", pure=True).load(io.BytesIO(raw))
        except YAMLError as exc:
            raise MlflowError(f"the MLmodel file of {name} v{version} is not YAML: {exc}") from None
        if not isinstance(parsed, dict):
            raise MlflowError(f"the MLmodel file of {name} v{version} is not a mapping")
        return parsed

    def _run(self, run_id: str | None) -> dict[str, Any] | None:
        return self.client.run(run_id) if run_id else None

    def _champion(self, model: str, number: str) -> dict[str, Any]:
        version = self.client.model_version(model, number)
        run = self._run(version.get("run_id"))
        return {
            "version": number,
            "url": self.client.version_url(model, number),
            "metrics": _run_facts(run, self.client)["metrics"] if run else {},
        }


def _run_facts(run: dict[str, Any], client: MlflowClient) -> dict[str, Any]:
    info, data = run.get("info", {}), run.get("data", {})
    run_id = info.get("run_id") or info.get("run_uuid")
    return {
        "id": run_id,
        "url": client.run_url(str(info.get("experiment_id", "0")), run_id),
        "metrics": {m["key"]: float(m["value"]) for m in data.get("metrics", [])},
        "params": {p["key"]: p.get("value", "") for p in data.get("params", [])},
        "tags": {t["key"]: t.get("value", "") for t in data.get("tags", [])},
    }


def _signature(mlmodel: dict[str, Any] | None) -> dict[str, Any] | None:
    """MLmodel keeps the signature's parts as JSON strings; the evidence wants them parsed."""
    raw = (mlmodel or {}).get("signature")
    if not isinstance(raw, dict):
        return None
    parsed = {}
    for part in ("inputs", "outputs", "params"):
        value = raw.get(part)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise MlflowError(f"the MLmodel signature's {part} are not JSON: {exc}") from None
        if value is not None:
            parsed[part] = value
    return parsed or None
