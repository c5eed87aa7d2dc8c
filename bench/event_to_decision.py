"""Webhooks through `phasegate serve` to recorded decisions. First single events, one at a
time (what one user waits for after a push); then a burst over many projects: how long until
every decision is recorded, and how many flow runs it took (coalescing should make it far
fewer than the number of events). Prints figures; never fails on time.

    python bench/event_to_decision.py [--singles 10] [--events 500] [--projects 100]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install(folder: Path, projects: int) -> None:
    """Policies with ``projects`` copies of the example project, each with the same checkout."""
    from tests.world import World  # the tests' own way of laying a checkout out

    shutil.copytree(ROOT / "policies", folder / "policies")
    shutil.rmtree(folder / "policies" / "tests")
    template = (folder / "policies" / "projects" / "churn-model.yaml").read_text()
    for n in range(projects):
        text = template.replace("key: churn-model", f"key: p{n}").replace(
            "acme/churn-model", f"acme/p{n}"
        )
        (folder / "policies" / "projects" / f"p{n}.yaml").write_text(
            text.replace("churn-classifier", f"m{n}")
        )
    World(folder, None).use_evidence("problem-framed.awaiting.json")  # type: ignore[arg-type]
    for n in range(projects):
        os.symlink(folder / "checkouts" / "churn-model", folder / "checkouts" / f"p{n}")


def sign(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256="
        + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


def body(project: int) -> bytes:
    return json.dumps(
        {"action": "edited", "repository": {"full_name": f"acme/p{project}"}}
    ).encode()


def singles(base: str, store, count: int, projects: int) -> list[float]:
    """Events sent one after another, each once the previous one is decided."""
    latencies = []
    for n in range(count):
        sent = body(n % projects)
        answer = httpx.post(f"{base}/webhooks/github", content=sent, headers=sign(sent), timeout=30)
        inbox_id = answer.json()["inbox_id"]
        deadline = time.monotonic() + 120
        while (row := store.inbox_event(inbox_id)).processed_at is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if row.processed_at is not None:
            latencies.append((row.processed_at - row.received_at).total_seconds())
        time.sleep(1)  # a quiet moment between two events
    return latencies


def figures(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, last {max(latencies):.2f} s"


def process_inbox_runs(api: str) -> int:
    flows = {"flows": {"name": {"any_": ["process-inbox"]}}}
    return httpx.post(f"{api}/flow_runs/count", json=flows).json()


async def burst(base: str, events: int, projects: int) -> float:
    # Waiting for a free connection is this client's own queue, not the receiver's answer;
    # and its connections are kept, so that the burst is not spent reconnecting.
    timeout = httpx.Timeout(30, pool=None)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        started = time.perf_counter()
        bodies = [body(i % projects) for i in range(events)]
        answers = await asyncio.gather(
            *(client.post("/webhooks/github", content=b, headers=sign(b)) for b in bodies)
        )
        assert all(a.status_code == 202 for a in answers), {a.status_code for a in answers}
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=10)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--projects", type=int, default=100)
    args = parser.parse_args()
    from gates.store import Store

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        install(folder, args.projects)
        port, prefect_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env |= {
            "PHASEGATE_DATABASE_URL": f"sqlite:///{folder}/phasegate.db",
            "PHASEGATE_GITHUB_WEBHOOK_SECRET": SECRET,
            "PHASEGATE_POLICIES": str(folder / "policies"),
            "PHASEGATE_CHECKOUTS": str(folder / "checkouts"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        command = ["phasegate", "serve", "--port", str(port), "--prefect-port", str(prefect_port)]
        log = (folder / "serve.log").open("w")
        server = subprocess.Popen(
            command, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
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
            store = Store(env["PHASEGATE_DATABASE_URL"])
            api = f"http://127.0.0.1:{prefect_port}/api"
            single = singles(base, store, args.singles, args.projects)
            single_runs = process_inbox_runs(api)
            already = store.inbox_counts().get("done", 0)
            evaluated = sum(len(store.evaluations(f"p{n}")) for n in range(args.projects))
            sent_s = asyncio.run(burst(base, args.events, args.projects))
            started = time.monotonic()
            while (
                store.inbox_counts().get("done", 0) < already + args.events
                and time.monotonic() - started < 600
            ):
                time.sleep(0.25)
            rows = store.inbox_events(limit=args.events, newest=True)
            latencies = [
                (r.processed_at - r.received_at).total_seconds() for r in rows if r.processed_at
            ]
            runs = process_inbox_runs(api) - single_runs
            evaluations = sum(len(store.evaluations(f"p{n}")) for n in range(args.projects))
            evaluations -= evaluated
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print("phasegate serve did not stop within 60 s: killed", file=sys.stderr)
                server.kill()
            log.close()
            if keep := os.environ.get("BENCH_KEEP_LOG"):  # for a look at where time went
                shutil.copy(folder / "serve.log", keep)
                shutil.copy(folder / ".phasegate" / "prefect-server.log", f"{keep}.prefect")
    if single:
        print(f"single    : {len(single)}/{args.singles} events decided one at a time")
        print(f"event→decision (single): {figures(single)}   ({single_runs} process-inbox runs)")
        print(f"  all (s)   : {' '.join(f'{x:.2f}' for x in single)}")
    done = len(latencies)
    print(
        f"burst     : {args.events} signed webhooks over {args.projects} projects, sent in {sent_s:.1f} s"
    )
    print(f"decided   : {done}/{args.events} events done, {evaluations} evaluations recorded")
    print(f"flow runs : {runs} process-inbox runs for {args.events} events")
    if latencies:
        print(f"event→decision (burst): {figures(latencies)}   (target p95 ≤ 5 s)")


if __name__ == "__main__":
    main()
