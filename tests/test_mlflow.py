"""MLflow: registry evidence, the webhook, and the decision that follows — against a real
``mlflow server`` (see tests/mlflow_server.py; skipped without ``.ci/mlflow.sh``'s venv)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Response
from typer.testing import CliRunner

from gates.evaluate import evaluate
from gates.evidence import ProjectEvidence, assemble
from gates.policy import MlflowRef, Project
from integrations.mlflow.client import (
    MlflowClient,
    MlflowConfigError,
    MlflowError,
    MlflowUnavailable,
)
from integrations.mlflow.evidence import MlflowSource
from integrations.receiver import create_app
from phasegate.cli import app as cli
from phasegate.settings import Settings
from tests import signing
from tests.servers import free_port, serving, wait_for

PR_HEAD = "9f3c2a1b7e5d4c3b2a190817263544536271809a"  # the PR in the model-packaged examples


def project(model: str, champion_alias: str = "champion") -> Project:
    return Project(
        kind="Project",
        key="p",
        mlflow=MlflowRef(models=[model], champion_alias=champion_alias),
    )


def unique(prefix: str = "churn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- the client, without a server -----------------------------------------------------------


def test_client_is_configured_by_mlflow_variables_and_never_shows_secrets():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(403, json={"error_code": "PERMISSION_DENIED", "message": "nope"})

    env = {
        "MLFLOW_TRACKING_URI": "https://ops:s3cret@mlflow.example",
        "MLFLOW_TRACKING_TOKEN": "tok-123",
    }
    client = MlflowClient.from_environment(env, httpx.MockTransport(answer))
    with pytest.raises(MlflowError) as raised:
        client.model_version("m", "1")
    assert seen[0].headers["authorization"] == "Bearer tok-123"
    assert "403 PERMISSION_DENIED nope" in str(raised.value)
    assert "s3cret" not in str(raised.value) and "tok-123" not in str(raised.value)
    assert client.version_url("m", "1") == "https://mlflow.example/#/models/m/versions/1"

    basic = MlflowClient.from_environment(
        {
            "MLFLOW_TRACKING_URI": "http://mlflow.example",
            "MLFLOW_TRACKING_USERNAME": "ops",
            "MLFLOW_TRACKING_PASSWORD": "pw",
        },
        httpx.MockTransport(answer),
    )
    with pytest.raises(MlflowError):
        basic.run("r")
    assert seen[-1].headers["authorization"].startswith("Basic ")

    with pytest.raises(MlflowConfigError) as raised:
        MlflowClient.from_environment({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"})
    assert str(raised.value) == (
        "MLFLOW_TRACKING_URI=sqlite:///mlflow.db is not an MLflow server URL; phasegate reads "
        "the registry over REST: point it at `mlflow server` (e.g. http://127.0.0.1:5000)"
    )
    with pytest.raises(MlflowConfigError) as raised:  # a database URI: its password stays out
        MlflowClient.from_environment({"MLFLOW_TRACKING_URI": "postgresql://ml:pw@db/mlflow"})
    assert "postgresql://…@db/mlflow is not an MLflow server URL" in str(raised.value)
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "ten", "must be a number of seconds above 0, found 'ten'"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "0", "must be a number of seconds above 0, found '0'"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "-1", "must be a whole number of retries, 0 or more"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1.5", "must be a whole number of retries, 0 or more"),
    ],
)
def test_bad_timeout_and_retry_variables_are_named(variable, value, message):
    env = {"MLFLOW_TRACKING_URI": "http://mlflow.example", variable: value}
    with pytest.raises(MlflowConfigError, match=f"^{variable} {message}"):
        MlflowClient.from_environment(env)


@contextmanager
def hanging_server() -> Iterator[str]:
    """Accepts connections and never answers, like a wedged server behind a load balancer."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def test_a_hanging_mlflow_times_out_as_configured(default_policies):
    churn = default_policies.projects["churn-model"]
    with hanging_server() as uri:
        env = {
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "1",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        }
        client = MlflowClient.from_environment(env)
        started = time.monotonic()
        fragment = MlflowSource(client).collect(churn)
        took = time.monotonic() - started
    reason = fragment["unavailable"]["mlflow"]
    assert "(2 attempts): ReadTimeout: timed out" in reason, reason
    assert reason.startswith(
        f"MLflow at {uri} did not answer GET /api/2.0/mlflow/registered-models"
    )
    assert client.calls == 2
    assert took < 6, f"1 s timeout, 1 retry took {took:.1f} s"
    evidence = assemble(ProjectEvidence(key="churn-model", models=["churn-classifier"]), [fragment])
    result = evaluate(
        default_policies.gates["model-packaged"],
        evidence,
        [],
        [],
        datetime.now(UTC),
        default_policies,
    )
    [packaged] = [c for c in result.checks if c.id == "version-packaged"]
    assert packaged.outcome == "error" and "timed out" in packaged.found


def test_5xx_and_connection_errors_are_retried_then_reported():
    attempts = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        return httpx.Response(503, text="upstream down")

    client = MlflowClient(
        "http://mlflow.example", retries=2, backoff_s=0.01, transport=httpx.MockTransport(flaky)
    )
    with pytest.raises(MlflowUnavailable, match=r"\(3 attempts\): HTTP 503 upstream down"):
        client.registered_model("m")
    assert len(attempts) == client.calls == 3


def test_an_unreachable_mlflow_makes_its_checks_error_not_fail(default_policies):
    client = MlflowClient(f"http://127.0.0.1:{free_port()}", retries=1, backoff_s=0.01)
    churn = default_policies.projects["churn-model"]
    fragment = MlflowSource(client).collect(churn)
    assert "Connection refused" in fragment["unavailable"]["mlflow"]
    evidence = assemble(ProjectEvidence(key="churn-model", models=["churn-classifier"]), [fragment])
    gate = default_policies.gates["model-packaged"]
    result = evaluate(gate, evidence, [], [], datetime.now(UTC), default_policies)
    outcomes = {c.id: c.outcome for c in result.checks}
    assert outcomes["version-packaged"] == outcomes["primary-metric"] == "error"
    assert outcomes["model-card"] == "failed"  # the rest of the gate is still decided
    assert result.status == "error"


def test_a_project_without_mlflow_has_no_registry_evidence():
    client = MlflowClient(f"http://127.0.0.1:{free_port()}")
    assert MlflowSource(client).collect(Project(kind="Project", key="p")) == {}
    assert client.calls == 0


# -- evidence from a real server -------------------------------------------------------------


def test_candidate_champion_and_packaging_from_the_registry(mlflow_server):
    name = unique()
    first = mlflow_server.log_model(name, metrics={"auc": 0.88})
    mlflow_server.set_alias(name, "champion", first["version"])
    second = mlflow_server.log_model(
        name, metrics={"auc": 0.91, "precision_at_5pct": 0.6}, commit=PR_HEAD
    )
    mlflow_server.set_alias(name, "challenger", second["version"])
    client = MlflowClient(mlflow_server.uri)

    facts = MlflowSource(client).collect(project(name))["mlflow"]

    version, run, champion = facts["version"], facts["run"], facts["champion"]
    assert (facts["model"], version["version"], version["status"]) == (name, "2", "READY")
    assert [c["name"] for c in version["signature"]["inputs"]] == [
        "tenure_months",
        "monthly_charges",
    ]
    assert version["has_input_example"] is True
    assert version["flavors"] == ["python_function"]
    assert version["environment"] == ["conda.yaml", "python_env.yaml", "requirements.txt"]
    assert version["aliases"] == ["challenger"] and version["run_id"] == second["run_id"]
    assert version["url"] == f"{mlflow_server.uri}/#/models/{name}/versions/2"
    assert version["user_id"]  # the run's user: open-source MLflow leaves the version's empty
    assert run["id"] == second["run_id"] and run["metrics"] == {
        "auc": 0.91,
        "precision_at_5pct": 0.6,
    }
    assert run["params"] == {"num_leaves": "63", "learning_rate": "0.05"}
    assert run["tags"]["mlflow.source.git.commit"] == PR_HEAD
    assert run["url"].startswith(f"{mlflow_server.uri}/#/experiments/")
    assert champion == {
        "version": "1",
        "url": f"{mlflow_server.uri}/#/models/{name}/versions/1",
        "metrics": {"auc": 0.88},
    }
    assert client.calls == 9  # the figure the benchmark reports

    mlflow_server.set_alias(name, "champion", second["version"])  # promoted: compared with itself
    facts = MlflowSource(client).collect(project(name))["mlflow"]
    assert facts["champion"]["version"] == "2" and facts["champion"]["metrics"]["auc"] == 0.91


def test_the_champion_alias_is_the_project_s_own(mlflow_server):
    name = unique()
    first = mlflow_server.log_model(name, metrics={"auc": 0.8})
    second = mlflow_server.log_model(name, metrics={"auc": 0.85})
    mlflow_server.log_model(name, metrics={"auc": 0.9})
    mlflow_server.set_alias(name, "prod", first["version"])
    mlflow_server.set_alias(name, "champion", second["version"])  # not this project's alias

    facts = MlflowSource(MlflowClient(mlflow_server.uri)).collect(project(name, "prod"))

    assert facts["mlflow"]["version"]["version"] == "3"
    assert facts["mlflow"]["champion"] == {
        "version": "1",
        "url": f"{mlflow_server.uri}/#/models/{name}/versions/1",
        "metrics": {"auc": 0.8},
    }


def test_a_model_nobody_registered_has_no_version(mlflow_server):
    name = unique("never-registered")
    facts = MlflowSource(MlflowClient(mlflow_server.uri)).collect(project(name))
    assert facts == {"mlflow": {"model": name, "version": None, "run": None, "champion": None}}


def test_a_version_without_signature_fails_the_packaging_check(mlflow_server, default_policies):
    name = unique()
    mlflow_server.log_model(name, signature=False)
    fragment = MlflowSource(MlflowClient(mlflow_server.uri)).collect(project(name, "no-such-alias"))
    version = fragment["mlflow"]["version"]
    assert version["signature"] is None and version["has_input_example"] is False
    assert fragment["mlflow"]["champion"] is None  # an unknown alias is no champion, not an error
    evidence = assemble(ProjectEvidence(key="churn-model", models=[name]), [fragment])
    gate = default_policies.gates["model-packaged"]
    result = evaluate(gate, evidence, [], [], datetime.now(UTC), default_policies)
    [packaged] = [c for c in result.checks if c.id == "version-packaged"]
    assert packaged.outcome == "failed"
    assert packaged.found == f"{name} v1: no signature; no input example"


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("uri", ["file:./mlruns", "sqlite:///mlflow.db"])
def test_a_local_mlflow_store_makes_mlflow_checks_error_and_the_flow_still_decides(
    uri, world, monkeypatch
):
    from flows.process_inbox import process_inbox

    logged: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = logged.append  # Prefect reconfigures the root logger on its first flow run
    logging.getLogger("phasegate.mlflow").addHandler(handler)

    world.use_evidence("model-packaged.passed.json")
    facts = world.checkout / ".phasegate" / "evidence.json"
    facts.write_text(
        json.dumps({k: v for k, v in json.loads(facts.read_text()).items() if k != "mlflow"})
    )
    world.move_to("model-development")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # MLflow's usual local values
    world.event("nudge")
    process_inbox()
    world.event("nudge-again")
    process_inbox()

    reason = (
        f"MLFLOW_TRACKING_URI={uri} is not an MLflow server URL; phasegate reads the registry "
        "over REST: point it at `mlflow server` (e.g. http://127.0.0.1:5000)"
    )
    evaluation = world.store.last_evaluations("churn-model")["model-packaged"]
    checks = {c["id"]: c for c in evaluation.result["checks"]}
    assert checks["version-packaged"]["outcome"] == "error"
    assert checks["version-packaged"]["found"] == f"mlflow could not be read: {reason}"
    assert checks["model-card"]["outcome"] == "passed"  # the rest of the gate is decided
    assert evaluation.status == "error"
    logging.getLogger("phasegate.mlflow").removeHandler(handler)
    assert [r.getMessage() for r in logged if "MLFLOW_TRACKING_URI" in r.getMessage()] == [
        f"MLflow evidence unavailable: {reason}"
    ]  # once, not per evaluation


# -- webhooks: connect, deliver, decide -----------------------------------------------------


@pytest.fixture
def clean_webhooks(mlflow_server):
    yield
    mlflow_server.delete_webhooks()


def connect(uri: str, receiver: str, monkeypatch, *extra: str):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PHASEGATE_MLFLOW_WEBHOOK_SECRET", signing.MLFLOW_SECRET)
    return CliRunner().invoke(cli, ["mlflow", "connect", "--url", receiver, *extra])


def test_connect_registers_one_webhook_and_updates_it_when_run_again(
    mlflow_server, clean_webhooks, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    receiver = f"http://127.0.0.1:{free_port()}"
    first = connect(mlflow_server.uri, receiver, monkeypatch)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("created webhook ")
    for event in ("registered_model.created", "model_version.created", "model_version_tag.set"):
        assert event in first.output
    assert "model_version_alias.created, model_version_alias.deleted" in first.output
    again = connect(mlflow_server.uri, receiver + "/", monkeypatch)
    assert again.exit_code == 0 and again.output.startswith("updated webhook ")
    hooks = mlflow_server.api("GET", "webhooks")["webhooks"]
    assert [h["url"] for h in hooks] == [f"{receiver}/webhooks/mlflow"]
    assert signing.MLFLOW_SECRET not in first.output + again.output

    monkeypatch.delenv("PHASEGATE_MLFLOW_WEBHOOK_SECRET")
    refused = CliRunner().invoke(cli, ["mlflow", "connect", "--url", receiver])
    assert refused.exit_code == 2 and "PHASEGATE_MLFLOW_WEBHOOK_SECRET" in refused.output


FLASK_404 = (  # what MLflow before 3.3 answers GET /api/2.0/mlflow/webhooks with
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
    "<p>The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again.</p>\n"
)
FLASK_500 = (  # what MLflow 3.x on a file store answers it with (FileStore has no webhooks)
    "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    "<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable "
    "to complete your request. Either the server is overloaded or there is an error in the "
    "application.</p>\n"
)


def mlflow_without_webhooks(status: int, body: str) -> FastAPI:
    """An MLflow server without webhooks, answering as the real one does (bodies captured
    from MLflow 3.17: an unknown route, and ``GET /webhooks`` on a file store)."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH"])
    def answer(path: str) -> Response:
        return Response(body, status_code=status, media_type="text/html; charset=utf-8")

    return app


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (404, FLASK_404, "has no webhooks API (needs MLflow ≥ 3.3 with a database backend)"),
        (500, FLASK_500, "as a server with a file store does: webhooks need MLflow ≥ 3.3"),
    ],
)
def test_connect_to_a_server_without_webhooks_says_reconcile_polls_instead(
    status, body, said, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    with serving(mlflow_without_webhooks(status, body)) as uri:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        done = connect(uri, "http://phasegate.example", monkeypatch)
    assert done.exit_code == 2
    assert said in done.output
    assert done.output.rstrip().endswith(
        "phasegate's reconcile flow polls the registry every 5 minutes instead"
    )
    assert "<!doctype" not in done.output


@pytest.mark.usefixtures("prefect_harness", "clean_webhooks")
def test_registering_a_version_reaches_the_receiver_and_the_gate_decides(
    mlflow_server, world, monkeypatch
):
    from flows.process_inbox import process_inbox

    name = unique()
    projects = world.root / "policies" / "projects" / "churn-model.yaml"
    projects.write_text(projects.read_text().replace("churn-classifier", name))
    world.use_evidence("model-packaged.passed.json")
    facts = world.checkout / ".phasegate" / "evidence.json"
    facts.write_text(
        json.dumps({k: v for k, v in json.loads(facts.read_text()).items() if k != "mlflow"})
    )
    world.move_to("model-development")
    monkeypatch.setenv("PHASEGATE_MLFLOW_WEBHOOK_SECRET", signing.MLFLOW_SECRET)
    settings = Settings()
    with serving(create_app(settings, world.store)) as receiver:
        assert connect(mlflow_server.uri, receiver, monkeypatch, "--test").exit_code == 0
        first = mlflow_server.log_model(name, metrics={"auc": 0.87})
        mlflow_server.set_alias(name, "champion", first["version"])
        mlflow_server.log_model(name, metrics={"auc": 0.93}, commit=PR_HEAD)
        mlflow_server.api(
            "POST",
            "model-versions/set-tag",
            json={"name": name, "version": "2", "key": "validated", "value": "yes"},
        )
        mlflow_server.api(
            "DELETE", "registered-models/alias", json={"name": name, "alias": "champion"}
        )
        kinds = {
            "registered_model.created",
            "model_version.created",
            "model_version_alias.created",
            "model_version_tag.set",
            "model_version_alias.deleted",
        }
        wait_for(
            lambda: kinds <= {r.kind for r in world.store.inbox_events(source="mlflow")}, timeout=30
        )

    rows = world.store.inbox_events(source="mlflow")
    tested = {r.id for r in rows if r.payload["data"].get("name") != name}
    assert tested, "the --test delivery arrived too, signed with the same secret"
    totals = process_inbox()
    statuses = {
        r.kind: r.status for r in world.store.inbox_events(source="mlflow") if r.id not in tested
    }
    assert set(statuses.values()) == {"done"}, statuses  # every registry event routed
    assert totals["decisions"] >= 1

    evaluation = world.store.last_evaluations("churn-model")["model-packaged"]
    checks = {c["id"]: c for c in evaluation.result["checks"]}
    assert checks["version-packaged"]["outcome"] == "passed"
    assert checks["version-packaged"]["found"] == f"{name} v2 is READY and packaged"
    assert checks["trained-from-pr"]["outcome"] == "passed"
    assert checks["primary-metric"]["found"] == "auc = 0.93"  # the champion alias was deleted
    assert evaluation.status == "awaiting_approval"  # every check passed; people decide now


@pytest.mark.usefixtures("prefect_harness")
def test_without_webhooks_reconcile_reads_the_registry_afresh(mlflow_server, world, monkeypatch):
    from flows.reconcile import reconcile

    name = unique()
    projects = world.root / "policies" / "projects" / "churn-model.yaml"
    projects.write_text(projects.read_text().replace("churn-classifier", name))
    world.use_evidence("model-packaged.passed.json")
    world.move_to("model-development")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    mlflow_server.log_model(name, metrics={"auc": 0.9})

    reconcile()  # no webhook told phasegate; the scheduled run finds the new version

    evaluation = world.store.last_evaluations("churn-model")["model-packaged"]
    [packaged] = [c for c in evaluation.result["checks"] if c["id"] == "version-packaged"]
    assert packaged["found"] == f"{name} v1 is READY and packaged"
