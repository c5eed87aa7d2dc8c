"""A real ``mlflow server`` for tests and benchmarks, run from its own virtualenv.

MLflow is not installed in phasegate's environment (its dependencies fight Prefect's pins):
``.ci/mlflow.sh`` makes ``.venv-mlflow`` and prints ``PHASEGATE_TEST_MLFLOW_PYTHON``. The
server keeps its SQLite backend and artifacts in a temporary folder and may deliver webhooks
to loopback (``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS``); models are logged by running
``tests/mlflow_log_model.py`` with that interpreter, exactly as a data scientist would.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.servers import free_port

LOG_MODEL = Path(__file__).with_name("mlflow_log_model.py")
PYTHON_VARIABLE = "PHASEGATE_TEST_MLFLOW_PYTHON"
HOW_TO_GET_IT = f'{PYTHON_VARIABLE} is unset: run `eval "$(bash .ci/mlflow.sh)"` first'


@dataclass
class MlflowServer:
    uri: str
    python: str

    def log_model(
        self,
        name: str,
        *,
        metrics: dict[str, float] | None = None,
        commit: str = "0123456789abcdef0123456789abcdef01234567",
        signature: bool = True,
    ) -> dict[str, Any]:
        """Train-and-register as a data scientist does; the new version and its run."""
        command = [self.python, str(LOG_MODEL), self.uri, name, commit]
        command += ["--metrics", json.dumps(metrics or {"auc": 0.9})]
        if not signature:
            command.append("--no-signature")
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"logging {name} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def api(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        response = httpx.request(method, f"{self.uri}/api/2.0/mlflow/{endpoint}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else {}

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.api(
            "POST",
            "registered-models/alias",
            json={"name": name, "alias": alias, "version": version},
        )

    def delete_webhooks(self) -> None:
        for hook in self.api("GET", "webhooks").get("webhooks", []):
            self.api("DELETE", f"webhooks/{hook['webhook_id']}")


@contextmanager
def mlflow_server(python: str, folder: Path, *, cache_ttl_s: int = 1) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` (SQLite + local artifacts under ``folder``); stop it after."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": str(cache_ttl_s),
        "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "0",  # a test's receiver is gone once it ends
    }
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"):
        env.pop(name, None)
    mlflow = str(Path(python).with_name("mlflow"))
    log = (folder / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [
            *([mlflow] if Path(mlflow).exists() else [python, "-m", "mlflow"]),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a loaded CI machine can take minutes
        while True:
            try:
                if httpx.get(f"{uri}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (folder / "mlflow-server.log").read_text()[-3000:]
                raise RuntimeError(f"mlflow server did not start:\n{tail}")
            time.sleep(0.2)
        yield MlflowServer(uri, python)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
