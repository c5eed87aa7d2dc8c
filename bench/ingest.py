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
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
KEEP_ALIVE_S = 4.0
"""Reuse a connection idle for less than this: uvicorn closes them after 5 s."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Connection:
    """One keep-alive HTTP/1.1 connection, written by hand: httpx costs several ms of CPU per
    request, and on a small machine the load generator would take the receiver's CPU and
    the figures would measure the client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(port: int, body: bytes, signature: str) -> bytes:
    head = (
        "POST /webhooks/github HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        "X-GitHub-Event: pull_request\r\n"
        f"X-GitHub-Delivery: {uuid.uuid4()}\r\n"
        f"X-Hub-Signature-256: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load(port: int, rate: float, seconds: float) -> tuple[list[float], list[int], float]:
    """Open loop: request i leaves at i/rate s on an idle connection (a new one if none is)."""
    body = (
        ROOT / "tests/fixtures/github-webhooks/pull_request/synchronize.payload.json"
    ).read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    total = int(rate * seconds)
    requests = [request(port, body, signature) for _ in range(total)]
    latencies: list[float] = []
    codes: list[int] = []
    idle: list[tuple[Connection, float]] = []  # and since when

    async def connect() -> Connection:
        while idle:  # the newest first; one idle for longer than the receiver keeps it is dropped
            connection, since = idle.pop()
            if time.perf_counter() - since < KEEP_ALIVE_S:
                return connection
            connection.writer.close()
        return Connection(*await asyncio.open_connection("127.0.0.1", port))

    async def one(i: int, start: float) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        sent = time.perf_counter()
        connection = await connect()
        try:
            codes.append(await connection.post(requests[i]))
        except (OSError, asyncio.IncompleteReadError):
            codes.append(0)  # the connection failed: counted, not retried
        else:
            idle.append((connection, time.perf_counter()))
        latencies.append(time.perf_counter() - sent)

    start = time.perf_counter()
    await asyncio.gather(*(one(i, start) for i in range(total)))
    elapsed = time.perf_counter() - start
    for connection, _ in idle:
        connection.writer.close()
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
        log = Path(folder) / "receiver.log"
        with log.open("wb") as output:
            server = subprocess.Popen(command, env=env, cwd=folder, stdout=output, stderr=output)
        base = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(100):
                if server.poll() is not None:
                    sys.exit(f"the receiver did not start:\n{log.read_text()}")
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            cpu_before = cpu_seconds(server.pid)
            latencies, codes, elapsed = asyncio.run(load(args.port, args.rate, args.seconds))
            cpu = cpu_seconds(server.pid) - cpu_before
            stored = httpx.get(f"{base}/healthz").json()["inbox"]
        finally:
            server.terminate()
            server.wait()
    ok = sum(c == 202 for c in codes)
    print(
        f"offered   : {args.rate:.0f} requests/s for {args.seconds:.0f} s ({len(codes)} signed deliveries)"
    )
    others = ", ".join(
        f"{n} answered {code or 'nothing (connection failed)'}"
        for code, n in Counter(codes).items()
        if code != 202
    )
    print(
        f"sustained : {len(codes) / elapsed:.0f} requests/s, {ok} accepted; {others or 'none other'}"
    )
    print(f"stored    : {stored}")
    print(
        f"receiver  : {cpu / len(codes) * 1e3:.2f} ms CPU per request ({os.cpu_count()} CPUs here)"
    )
    print(
        f"answer    : p50 {statistics.median(latencies) * 1e3:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms"
        "   (target p99 ≤ 50 ms at 200/s)"
    )


if __name__ == "__main__":
    main()
