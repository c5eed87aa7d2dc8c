"""From MLflow registering a model version to phasegate's recorded gate decision.

A real ``mlflow server`` (from ``.ci/mlflow.sh``'s virtualenv) delivers its
``model_version.created`` webhook to ``phasegate serve``; the time measured runs from the
version's creation time in MLflow to the ``model-packaged`` evaluation that names that
version. Also: how many MLflow REST calls one evidence collection costs. Prints figures;
never fails on time.

    eval "$(bash .ci/mlflow.sh)" && python bench/mlflow_to_decision.py [--versions 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "bench-mlflow-secret"
MODEL = "churn-classifier"


def install(folder: Path) -> None:
    """The shipped policies and the example project, in model development, its registry
    facts left to MLflow."""
    import shutil

    from gates.store import Store
    from tests.world import World

    shutil.copytree(ROOT / "policies", folder / "policies")
    World(folder, None).use_evidence("model-packaged.passed.json")  # type: ignore[arg-type]
    facts = folder / "checkouts" / "churn-model" / ".phasegate" / "evidence.json"
    facts.write_text(
        json.dumps({k: v for k, v in json.loads(facts.read_text()).items() if k != "mlflow"})
    )
    store = Store(f"sqlite:///{folder}/phasegate.db")
    store.migrate()
    now = datetime.now(UTC)
    store.ensure_project("churn-model", "framing", now)
    store.transition(
        project="churn-model",
        to_phase="model-development",
        kind="advance",
        reason="benchmark setup",
        evaluation_id=None,
        at=now,
    )


def decided_at(store, version: str) -> datetime | None:
    """When the first model-packaged evaluation naming ``version`` was recorded."""
    for row in store.evaluations("churn-model"):
        if row.gate != "model-packaged":
            continue
        found = " ".join(c.get("found", "") for c in row.result.get("checks", []))
        if f"{MODEL} v{version} " in found:
            return row.at
    return None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=20)
    args = parser.parse_args()
    python = os.environ.get("PHASEGATE_TEST_MLFLOW_PYTHON")
    if not python:
        sys.exit('PHASEGATE_TEST_MLFLOW_PYTHON is unset: run eval "$(bash .ci/mlflow.sh)" first')

    from gates.loader import load_or_raise
    from gates.store import Store
    from integrations.mlflow.client import MlflowClient
    from integrations.mlflow.evidence import MlflowSource
    from tests.mlflow_server import mlflow_server
    from tests.servers import free_port

    with tempfile.TemporaryDirectory() as name, mlflow_server(python, Path(name)) as mlflow:
        folder = Path(name)
        install(folder)
        logged = mlflow.log_model(
            MODEL, metrics={"auc": 0.91}, commit="9f3c2a1b7e5d4c3b2a190817263544536271809a"
        )
        mlflow.set_alias(MODEL, "champion", logged["version"])
        source = mlflow.api("GET", "model-versions/get", params={"name": MODEL, "version": "1"})[
            "model_version"
        ]["source"]

        port, prefect_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env |= {
            "PHASEGATE_DATABASE_URL": f"sqlite:///{folder}/phasegate.db",
            "PHASEGATE_MLFLOW_WEBHOOK_SECRET": SECRET,
            "PHASEGATE_POLICIES": str(folder / "policies"),
            "PHASEGATE_CHECKOUTS": str(folder / "checkouts"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "MLFLOW_TRACKING_URI": mlflow.uri,
        }
        base = f"http://127.0.0.1:{port}"
        log = (folder / "serve.log").open("w")
        serve = subprocess.Popen(
            ["phasegate", "serve", "--port", str(port), "--prefect-port", str(prefect_port)],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        latencies: list[float] = []
        registrations: dict[str, datetime] = {}
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            time.sleep(5)  # let the deployments and their triggers register
            connect = ["phasegate", "mlflow", "connect", "--url", base]
            subprocess.run(connect, env=env, cwd=folder, check=True, capture_output=True)
            time.sleep(2)  # MLflow caches its webhook list (MLFLOW_WEBHOOK_CACHE_TTL=1 here)
            store = Store(env["PHASEGATE_DATABASE_URL"])
            for _ in range(args.versions):
                created = mlflow.api(
                    "POST",
                    "model-versions/create",
                    json={
                        "name": MODEL,
                        "source": source,  # models:/<model id>: the logged model again
                        "model_id": source.removeprefix("models:/"),
                        "run_id": logged["run_id"],
                    },
                )["model_version"]
                registered = datetime.fromtimestamp(created["creation_timestamp"] / 1000, UTC)
                registrations[created["version"]] = registered
                waited = time.monotonic()
                while (at := decided_at(store, created["version"])) is None:
                    if time.monotonic() - waited > 60:
                        print(f"v{created['version']}: no decision within 60 s", file=sys.stderr)
                        break
                    time.sleep(0.05)
                if at is not None:
                    latencies.append((at - registered).total_seconds())
            inbox = store.inbox_counts()
            received = {
                r.payload["data"]["version"]: r.received_at
                for r in store.inbox_events(source="mlflow", limit=10 * args.versions)
            }
            deliveries = [(received[v] - at).total_seconds() for v, at in registrations.items()]
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
            log.close()
            if len(latencies) < args.versions:
                print((folder / "serve.log").read_text()[-6000:], file=sys.stderr)

        client = MlflowClient(mlflow.uri)
        project = load_or_raise(folder / "policies").projects["churn-model"]
        started = time.perf_counter()
        MlflowSource(client).collect(project)
        collect_ms = (time.perf_counter() - started) * 1000

    print(f"registrations : {args.versions} versions registered one after another (REST)")
    print(f"decided       : {len(latencies)}/{args.versions} got a model-packaged decision")
    print(f"inbox         : {inbox}")
    if latencies:
        print(
            f"register→decision: p50 {statistics.median(latencies):.2f} s, "
            f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s"
        )
        print(f"  all (s)     : {' '.join(f'{x:.1f}' for x in latencies)}")
        print(
            f"  of which MLflow's webhook delivery: p50 {statistics.median(deliveries):.2f} s, "
            f"max {max(deliveries):.2f} s"
        )
    print(
        f"MLflow REST calls per evaluation: {client.calls} ({collect_ms:.0f} ms for one collection)"
    )


if __name__ == "__main__":
    main()
