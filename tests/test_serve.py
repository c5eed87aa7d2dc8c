"""`phasegate serve` as an operator runs it: one command, a webhook in, a decision out."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import httpx

from gates.store import Store
from phasegate.serve import banner
from phasegate.settings import Settings
from tests import signing
from tests.paths import ROOT
from tests.servers import free_port, wait_for

SECRETS = {
    "PHASEGATE_GITHUB_WEBHOOK_SECRET": signing.GITHUB_SECRET,
    "PHASEGATE_SLACK_SIGNING_SECRET": signing.SLACK_SECRET,
    "PHASEGATE_MLFLOW_WEBHOOK_SECRET": signing.MLFLOW_SECRET,
    "PHASEGATE_ALERTS_TOKEN": signing.ALERTS_TOKEN,
}
PUBLIC = "https://phasegate.example.org"


def _env() -> dict[str, str]:
    """The test's environment without a Prefect server or any phasegate secret: what
    ``serve`` needs it must find in the working directory's ``.env``."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_API") and key not in SECRETS
    } | {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT)}


def _serve(port: int, prefect_port: int) -> list[str]:
    return ["phasegate", "serve", "--port", str(port), "--prefect-port", str(prefect_port)]


def test_serve_starts_everything_and_decides_on_a_webhook(world):
    """Secrets and the public address come from a ``.env`` in the working directory, as an
    operator keeps them; none of the secrets is ever printed."""
    world.use_evidence("problem-framed.awaiting.json")
    dotenv = {**SECRETS, "PHASEGATE_PUBLIC_URL": PUBLIC}
    (world.root / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    port, prefect_port = free_port(), free_port()
    log = (world.root / "serve.log").open("w")
    server = subprocess.Popen(
        _serve(port, prefect_port), cwd=world.root, env=_env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(base), timeout=120, every=0.5)
        banner_text = wait_for(lambda: _banner(world.root / "serve.log"), timeout=10)
        assert f"GitHub webhook     {PUBLIC}/webhooks/github" in banner_text
        assert f"MLflow webhook     {PUBLIC}/webhooks/mlflow" in banner_text
        assert f"Alertmanager       {PUBLIC}/webhooks/alerts" in banner_text
        assert f"Slack interactions {PUBLIC}/slack/interactions" in banner_text
        assert f"Prefect UI         http://127.0.0.1:{prefect_port}" in banner_text

        # Every secret came from .env: a wrong credential is refused (401), not "not set" (503).
        body = b'{"entity": "model_version", "action": "created", "data": {}}'
        forged = {
            "/webhooks/alerts": signing.alerts("wrong"),
            "/webhooks/mlflow": signing.mlflow(body, secret="wrong"),
            "/slack/interactions": signing.slack(body, secret="wrong"),
            "/webhooks/github": signing.github(body, "issues", secret="wrong"),
        }
        for path, headers in forged.items():
            assert httpx.post(f"{base}{path}", content=body, headers=headers).status_code == 401

        body = json.dumps(
            {"action": "edited", "repository": {"full_name": "acme/churn-model"}}
        ).encode()
        answer = httpx.post(
            f"{base}/webhooks/github", content=body, headers=signing.github(body, "issues")
        )
        assert answer.status_code == 202
        store = Store(os.environ["PHASEGATE_DATABASE_URL"])
        started = time.monotonic()
        evaluation = wait_for(lambda: store.evaluations("churn-model"), timeout=90, every=0.25)[0]
        print(f"webhook → recorded decision in {time.monotonic() - started:.1f} s")
        assert (evaluation.gate, evaluation.status) == ("problem-framed", "awaiting_approval")
        assert (
            wait_for(lambda: world.decisions(), timeout=90, every=0.5)[0]["status"]
            == "awaiting_approval"
        )
        assert store.inbox_events()[0].status == "done"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert not _reachable(f"http://127.0.0.1:{prefect_port}/api/health"), (
        "the Prefect server it started is still up"
    )
    output = (world.root / "serve.log").read_text()
    for secret in SECRETS.values():
        assert secret not in output


def test_serve_on_a_port_in_use_says_so_and_leaves_nothing_running(world):
    prefect_port = free_port()
    with socket.socket() as holder:  # another program on the receiver's port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = subprocess.Popen(
            _serve(port, prefect_port),
            cwd=world.root,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = server.communicate(timeout=90)
        except subprocess.TimeoutExpired:  # it kept serving without its receiver
            server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=60)
            raise AssertionError(f"serve kept running on a port in use:\n{out}\n{err}") from None
    assert server.returncode != 0
    assert f"port 127.0.0.1:{port} is already in use; pass --port or stop what holds it" in err
    assert "phasegate is serving" not in out
    assert not _reachable(f"http://127.0.0.1:{prefect_port}/api/health")


def test_banner_gives_addresses_senders_can_reach():
    ui = "http://127.0.0.1:4200"
    public = banner(Settings(public_url=PUBLIC + "/"), "0.0.0.0", 8787, ui)
    for line in (
        f"GitHub webhook     {PUBLIC}/webhooks/github ",
        f"MLflow webhook     {PUBLIC}/webhooks/mlflow ",
        f"Alertmanager       {PUBLIC}/webhooks/alerts ",
        f"Slack interactions {PUBLIC}/slack/interactions",
        f"Prefect UI         {ui}",
    ):
        assert line in public
    assert "0.0.0.0" not in public and "note:" not in public

    everywhere = banner(Settings(), "0.0.0.0", 8787, ui)
    name = f"http://{socket.gethostname()}:8787"
    assert "0.0.0.0:8787" not in everywhere
    assert f"GitHub webhook     {name}/webhooks/github " in everywhere
    assert f"Slack interactions {name}/slack/interactions" in everywhere
    assert "set PHASEGATE_PUBLIC_URL to the address the senders can reach" in everywhere

    local = banner(Settings(), "127.0.0.1", 8787, ui)
    assert "GitHub webhook     http://127.0.0.1:8787/webhooks/github " in local
    ipv6 = banner(Settings(), "::1", 8787, ui)
    assert "Alertmanager       http://[::1]:8787/webhooks/alerts " in ipv6


def test_the_database_password_is_never_shown():
    url = "postgresql+psycopg://phasegate:pg-s3cret@db.example:5432/phasegate"
    settings = Settings(database_url=url, github_token="ghp_t0ken", slack_bot_token="xoxb-t0ken")
    text = banner(settings, "127.0.0.1", 8787, "http://127.0.0.1:4200")
    assert "store              postgresql+psycopg://phasegate:***@db.example:5432/phasegate" in text
    for shown in (text, repr(settings), str(settings)):
        for secret in ("pg-s3cret", "ghp_t0ken", "xoxb-t0ken"):
            assert secret not in shown
    query = Settings(database_url="postgresql://phasegate@db/x?password=pg-s3cret")
    assert "pg-s3cret" not in banner(query, "127.0.0.1", 8787, "") + repr(query)
    assert Settings(database_url=url).database_url == url  # the store still gets all of it


def _banner(path) -> str | None:
    text = path.read_text()
    return text if "Ctrl-C stops everything." in text else None


def _healthy(base: str) -> bool:
    return _reachable(f"{base}/healthz")


def _reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
