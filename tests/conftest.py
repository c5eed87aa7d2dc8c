"""Shared fixtures: the default policies, a small editable policy directory, evidence."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gates.loader import load_or_raise
from gates.policy import PolicySet
from tests.paths import POLICIES, ROOT
from tests.world import make_world

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# A minimal, valid policy set whose line numbers the loader tests rely on.
SMALL = {
    "lifecycle.yaml": """\
kind: Lifecycle
phases:
  - id: framing
  - id: data
transitions:
  - from: framing
    to: data
    gate: framed
""",
    "people.yaml": """\
kind: Roles
roles:
  - id: lead
  - id: owner
---
kind: People
people:
  - id: ann
    github: ann-gh
  - id: ben
    slack: U0BEN
""",
    "project.yaml": """\
kind: Project
key: demo
people:
  lead: [ann]
  owner: [ben]
""",
    "gate.yaml": """\
kind: Gate
id: framed
checks:
  - id: ask
    kind: issue_sections
    with:
      label: Ask
      sections: [Problem]
  - id: metric
    expr: ask.primary_metric != null
approvals:
  - roles: [lead]
    count: 1
waivers:
  - roles: [lead]
    checks: [ask]
""",
}


@pytest.fixture(scope="session")
def default_policies() -> PolicySet:
    return load_or_raise(POLICIES)


@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    for name, text in SMALL.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A copy of the shipped policies (and the examples its tests point at)."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path / "policies"


@pytest.fixture(scope="session")
def prefect_harness():
    """Real Prefect, once per session (it takes 10-20 s to start), with the run heartbeat off."""
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=90),
        temporary_settings(updates={"flows.heartbeat_frequency": None}),
    ):
        yield


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` (SQLite, local artifacts), once per session: see
    tests/mlflow_server.py. Skipped, saying how to get one, without the MLflow virtualenv."""
    from tests.mlflow_server import HOW_TO_GET_IT, PYTHON_VARIABLE
    from tests.mlflow_server import mlflow_server as start

    python = os.environ.get(PYTHON_VARIABLE)
    if not python:
        pytest.skip(HOW_TO_GET_IT)
    with start(python, tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A phasegate installation in a temporary folder (see tests/world.py)."""
    yield from make_world(tmp_path, monkeypatch)
