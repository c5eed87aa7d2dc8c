"""Sustained signed-webhook ingest on loopback: requests/s and answer latency percentiles.

Starts `phasegate receive` (its own process, SQLite store in a temporary folder), then sends
signed GitHub deliveries on an open-loop schedule (request i leaves at i/rate s, whatever
the answers do) and reports what the receiver sustained. Prints figures; never fails on time.

    python bench/ingest.py [--rate 200] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(base: str, rate: float, seconds: float) -> tuple[list[float], list[int], float]:
    body = (
        ROOT / "tests/fixtures/github-webhooks/pull_request/synchronize.payload.json"
    ).read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    total = int(rate * seconds)
    latencies: list[float] = []
    codes: list[int] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(i: int, start: float) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature,
            }
            sent = time.perf_counter()
            answer = await client.post("/webhooks/github", content=body, headers=headers)
            latencies.append(time.perf_counter() - sent)
            codes.append(answer.status_code)

        start = time.perf_counter()
        await asyncio.gather(*(one(i, start) for i in range(total)))
        elapsed = time.perf_counter() - start
    return latencies, codes, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--port", type=int, default=8797)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env |= {
            "PHASEGATE_DATABASE_URL": f"sqlite:///{folder}/ingest.db",
            "PHASEGATE_GITHUB_WEBHOOK_SECRET": SECRET,
        }
        command = [sys.executable, "-m", "phasegate.cli", "receive", "--port", str(args.port)]
        server = subprocess.Popen(
            command, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            latencies, codes, elapsed = asyncio.run(load(base, args.rate, args.seconds))
            stored = httpx.get(f"{base}/healthz").json()["inbox"]
        finally:
            server.terminate()
            server.wait()
    ok = sum(c == 202 for c in codes)
    print(
        f"offered   : {args.rate:.0f} requests/s for {args.seconds:.0f} s ({len(codes)} signed deliveries)"
    )
    print(
        f"sustained : {len(codes) / elapsed:.0f} requests/s, {ok} accepted, {len(codes) - ok} other"
    )
    print(f"stored    : {stored}")
    print(
        f"answer    : p50 {statistics.median(latencies) * 1e3:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms"
        "   (target p99 ≤ 50 ms at 200/s)"
    )


if __name__ == "__main__":
    main()
