"""``phasegate serve``: receiver, flows and (unless one is configured) a Prefect server.

On one box everything talks to one Prefect server: the receiver emits its events there and
the served flows' triggers fire there. When ``PREFECT_API_URL`` names a server, that one is
used; otherwise a local one is started under ``.phasegate/prefect`` and stopped on exit.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
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
from phasegate.settings import Settings, displayed_url

log = logging.getLogger("phasegate.serve")
HOME = Path(".phasegate")
BACKLOG = 2048  # uvicorn's default
ALL_INTERFACES = {"0.0.0.0", "::", ""}


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


def _listen(host: str, port: int) -> socket.socket:
    """Take the receiver's port before anything else is started: a port already in use is
    the most common reason ``serve`` cannot work, and it is found out in a second, with a
    message that says what to do, rather than after a Prefect server has been started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {host}:{port} is already in use; pass --port or stop what holds it"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _wait_started(receiver: uvicorn.Server, thread: threading.Thread, where: str) -> None:
    """uvicorn reports a failed start by ``sys.exit`` in its own thread, which ends the
    thread without a word: wait for one or the other, and say which."""
    while not receiver.started:
        if not thread.is_alive():
            raise ServeError(f"the receiver on {where} did not start (see the log above)")
        time.sleep(0.05)


def _public_base(settings: Settings, host: str, port: int) -> tuple[str, str | None]:
    """The address to give GitHub, Slack, MLflow and Alertmanager, and a note when it is a
    guess: ``PHASEGATE_PUBLIC_URL`` when set (a proxy or tunnel in front), otherwise the
    listening address; listening on every interface is no address to call, so this
    machine's name stands in for it."""
    if settings.public_url:
        return settings.public_url.rstrip("/"), None
    if host in ALL_INTERFACES:
        guess = f"http://{socket.gethostname()}:{port}"
        return guess, (
            f"listening on every interface ({host}); {guess} is this machine's name: "
            "set PHASEGATE_PUBLIC_URL to the address the senders can reach"
        )
    return f"http://{f'[{host}]' if ':' in host else host}:{port}", None


def banner(settings: Settings, host: str, port: int, prefect_ui: str) -> str:
    """What ``serve`` prints once everything is up: the URLs to configure, secrets hidden."""
    base, note = _public_base(settings, host, port)
    lines = [
        "phasegate is serving",
        f"  GitHub webhook     {base}/webhooks/github   (content type application/json)",
        f"  MLflow webhook     {base}/webhooks/mlflow   (phasegate mlflow connect --url {base})",
        f"  Alertmanager       {base}/webhooks/alerts   (bearer token PHASEGATE_ALERTS_TOKEN)",
        f"  Evidently reports  {base}/webhooks/monitoring/reports?model=<name>   (same token)",
        f"  Slack interactions {base}/slack/interactions",
        f"  health             {base}/healthz",
        f"  Prefect UI         {prefect_ui}",
        f"  store              {displayed_url(settings.database_url)}",
    ]
    if note:
        lines.insert(1, f"  note: {note}")
    return "\n".join([*lines, "Ctrl-C stops everything."])


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
    with _listen(host, port) as sock, prefect_server(prefect_port) as api:
        from prefect import serve as prefect_serve

        from flows.deployments import deployments
        from flows.drain import Drainer

        drainer = Drainer()  # decides the moment an event is stored: see flows/drain.py
        receiver = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, store, drainer), host=host, port=port, log_level="info"
            )
        )
        thread = threading.Thread(
            target=receiver.run, kwargs={"sockets": [sock]}, name="receiver", daemon=True
        )
        thread.start()
        try:
            _wait_started(receiver, thread, f"{host}:{port}")
            print(banner(settings, host, port, api.removesuffix("/api")), flush=True)
            signal.signal(signal.SIGTERM, _interrupt)
            drainer.start()
            drainer.wake()  # events stored while phasegate was down are decided now
            prefect_serve(*deployments(), print_starting_message=False)
        except KeyboardInterrupt:
            pass
        finally:
            receiver.should_exit = True
            thread.join(timeout=10)
            drainer.close()
