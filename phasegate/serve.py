"""``phasegate serve``: receiver, flows and (unless one is configured) a Prefect server.

On one box everything talks to one Prefect server: the receiver emits its events there and
the served flows' triggers fire there. When ``PREFECT_API_URL`` names a server, that one is
used; otherwise a local one is started under ``.phasegate/prefect`` and stopped on exit.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from gates.active import ActivePolicies
from gates.store import Store
from integrations.receiver import create_app
from phasegate.settings import Settings

log = logging.getLogger("phasegate.serve")
HOME = Path(".phasegate")


class ServeError(RuntimeError):
    pass


def _wait_healthy(url: str, process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServeError(
                f"the Prefect server exited with code {process.returncode}; see {HOME / 'prefect-server.log'}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServeError(f"Prefect server at {url} not healthy after {timeout_s:.0f} s")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def prefect_server(port: int) -> Iterator[str]:
    """The Prefect API to use: the configured one, or a local server started for this run."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        _wait_healthy(configured, None, 30)
        yield configured
        return
    home = (HOME / "prefect").resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    logfile = (HOME / "prefect-server.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=logfile, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, process, 90)
        os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=str(home))
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        logfile.close()


def serve(settings: Settings, host: str, port: int, prefect_port: int) -> None:
    store = Store(settings.database_url)
    store.migrate()
    policies = ActivePolicies(settings.policies, cache=HOME / "policies.last-valid.json")
    errors = policies.reload()
    _ = policies.current  # refuse to start without any valid policy set (raises, with errors)
    for error in errors:
        log.error("policy error (the last valid set is in force): %s", error)
    HOME.mkdir(exist_ok=True)
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")  # pick triggered runs up fast
    with prefect_server(prefect_port) as api:
        from prefect import serve as prefect_serve

        from flows.deployments import deployments
        from flows.drain import Drainer

        drainer = Drainer()  # decides the moment an event is stored: see flows/drain.py
        receiver = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, store, drainer), host=host, port=port, log_level="info"
            )
        )
        thread = threading.Thread(target=receiver.run, name="receiver", daemon=True)
        thread.start()
        base = f"http://{host}:{port}"
        print(
            "phasegate is serving\n"
            f"  GitHub webhook     {base}/webhooks/github   (content type application/json)\n"
            f"  MLflow webhook     {base}/webhooks/mlflow   (phasegate mlflow connect --url {base})\n"
            f"  Alertmanager       {base}/webhooks/alerts   (bearer token PHASEGATE_ALERTS_TOKEN)\n"
            f"  Evidently reports  {base}/webhooks/monitoring/reports?model=<name>   (same token)\n"
            f"  Slack interactions {base}/slack/interactions\n"
            f"  health             {base}/healthz\n"
            f"  Prefect UI         {api.removesuffix('/api')}\n"
            f"  store              {settings.database_url}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        signal.signal(signal.SIGTERM, _interrupt)
        drainer.start()
        drainer.wake()  # events stored while phasegate was down are decided now
        try:
            prefect_serve(*deployments(), print_starting_message=False)
        except KeyboardInterrupt:
            pass
        finally:
            receiver.should_exit = True
            thread.join(timeout=10)
            drainer.close()
