"""`phasegate serve` as an operator runs it: one command, a webhook in, a decision out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx

from gates.store import Store
from tests import signing
from tests.paths import ROOT
from tests.servers import free_port, wait_for


def test_serve_starts_everything_and_decides_on_a_webhook(world):
    world.use_evidence("problem-framed.awaiting.json")
    port, prefect_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")} | {
        "PHASEGATE_GITHUB_WEBHOOK_SECRET": signing.GITHUB_SECRET,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    command = ["phasegate", "serve", "--port", str(port), "--prefect-port", str(prefect_port)]
    log = (world.root / "serve.log").open("w")
    server = subprocess.Popen(
        command, cwd=world.root, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(base), timeout=120, every=0.5)
        banner = (world.root / "serve.log").read_text()
        assert f"GitHub webhook     {base}/webhooks/github" in banner
        assert f"Prefect UI         http://127.0.0.1:{prefect_port}" in banner

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


def _healthy(base: str) -> bool:
    return _reachable(f"{base}/healthz")


def _reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
