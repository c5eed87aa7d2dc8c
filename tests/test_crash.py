"""kill -9 in the middle of a batch: after a restart every event is processed exactly once in
effect, and no side effect is performed twice.

The worker (tests/crash_worker.py) is slowed so that the kill lands where it hurts: in
process-inbox after some units of the batch have recorded their decision (and moved their
project) while the batch's events are still claimed; in deliver-outbox after GitHub has made
a check run and before phasegate has marked the side effect done; and in deliver-outbox again
and again on the same side effect, which is then given up rather than tried forever.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from prefect.settings import get_current_settings

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.runtime import runtime
from tests.github_world import connect, pr_event, seed
from tests.paths import ROOT
from tests.servers import serving, wait_for

pytestmark = pytest.mark.usefixtures("prefect_harness")
PROJECTS = [f"p{n}" for n in range(8)]
EVENTS_EACH = 5


def add_projects(world) -> None:
    text = (world.root / "policies" / "projects" / "churn-model.yaml").read_text()
    for key in PROJECTS:
        (world.root / "policies" / "projects" / f"{key}.yaml").write_text(
            text.replace("key: churn-model", f"key: {key}")
            .replace("acme/churn-model", f"acme/{key}")
            .replace("models: [churn-classifier]", f"models: [{key}-model]")
        )
    world.use_evidence("experiment-succeeded.passed.json")
    for key in PROJECTS:
        os.symlink(world.checkout, world.root / "checkouts" / key)
        world.move_to("experimentation", key)
        for n in range(EVENTS_EACH):
            world.event(f"{key}-{n}", repo=f"acme/{key}")


def start_worker(world, flow: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PREFECT_API_URL": get_current_settings().api.url, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "crash_worker.py"), flow],
        env=env,
        cwd=world.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_9(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait()


def restart(monkeypatch) -> None:
    """A new process, once the dead worker's claims are stale (at once, here)."""
    monkeypatch.setenv("PHASEGATE_RECLAIM_AFTER_S", "0")
    runtime.cache_clear()


def moved(world) -> list[str]:
    return [
        key
        for key in PROJECTS
        if any(t.to_phase == "model-development" for t in world.store.transitions(key))
    ]


def test_kill_9_mid_batch_then_restart(world, monkeypatch):
    add_projects(world)
    worker = start_worker(world, "process-inbox")
    try:
        wait_for(lambda: moved(world), timeout=120)  # a unit recorded its decision and moved
    finally:
        kill_9(worker)
    evaluated = [key for key in PROJECTS if world.store.evaluations(key)]
    assert world.store.inbox_counts() == {"processing": len(PROJECTS) * EVENTS_EACH}
    assert 0 < len(evaluated) < len(PROJECTS), f"the kill did not land mid-batch: {evaluated}"

    restart(monkeypatch)
    process_inbox()
    process_inbox()  # and a second, redundant run changes nothing
    deliver_outbox()
    deliver_outbox()

    assert world.store.inbox_counts() == {"done": len(PROJECTS) * EVENTS_EACH}
    for key in PROJECTS:
        moves = [(t.from_phase, t.to_phase) for t in world.store.transitions(key)]
        assert moves.count(("experimentation", "model-development")) == 1, (key, moves)
        assert world.store.project(key).phase == "model-development"
    # Each decision is told once: not lost with the dead worker, not told again after it.
    told = collections.Counter((d["project"], d["gate"], d["status"]) for d in world.decisions())
    assert {(p, g) for p, g, _ in told} == {
        (key, gate) for key in PROJECTS for gate in ("experiment-succeeded", "model-packaged")
    }, told
    assert max(told.values()) == 1, told
    assert all(told[(key, "experiment-succeeded", "passed")] == 1 for key in PROJECTS), told


class HeldCreations:
    """The fake GitHub, answering check-run creations (and, with ``updates``, changes) only
    ``hold_s`` after making them, or once ``holding`` is turned off: the window in which
    GitHub has the check run and phasegate does not know it yet."""

    def __init__(self, app: Any, hold_s: float, updates: bool = False) -> None:
        self.app = app
        self.hold_s = hold_s
        self.methods = ("POST", "PATCH") if updates else ("POST",)
        self.holding = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        writing = (
            scope["type"] == "http"
            and scope["method"] in self.methods
            and "/check-runs" in scope["path"]
        )
        if not (self.holding and writing):
            await self.app(scope, receive, send)
            return
        answer: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        held_until = asyncio.get_running_loop().time() + self.hold_s
        while self.holding and asyncio.get_running_loop().time() < held_until:
            await asyncio.sleep(0.05)
        for message in answer:
            await send(message)


def test_kill_9_while_delivering_check_runs_then_restart(world, monkeypatch):
    fake, repo, number, _head, private = seed(world)
    numbers = [number] + [
        repo.add_pull(
            f"model/{n}-churn-variant",
            files={"docs/model_card.md": f"# Model card\n\n## Model details\nVariant {n}.\n"},
            labels=["Model"],
        ).number
        for n in (13, 14, 15)
    ]
    held = HeldCreations(fake.app, hold_s=3)
    with serving(held) as base:
        connect(world, monkeypatch, base, private)
        for n in numbers:
            pr_event(world, f"pr-{n}", n)
        assert process_inbox()["decisions"] == len(numbers)
        queued = [row for row in world.store.outbox_rows("pending") if row.kind == "github.check"]
        assert len(queued) == len(numbers)

        worker = start_worker(world, "deliver-outbox")
        try:  # the first creation was answered and recorded; GitHub made the second one
            wait_for(lambda: fake.count("checks/create") >= 2, timeout=120)
        finally:
            kill_9(worker)
        held.holding = False
        assert fake.count("checks/create") == 2

        restart(monkeypatch)
        deliver_outbox()
        deliver_outbox()

    created = collections.Counter(
        (call.body["head_sha"], call.body["name"])
        for call in fake.calls(method="POST", path="/repos/acme/churn-model/check-runs")
    )
    assert len(created) == len(numbers) and max(created.values()) == 1, created
    for n in numbers:
        head = repo.branches[repo.pull(n).head]
        runs = [r for r in repo.check_runs_for(head) if r.name == "phasegate / model-packaged"]
        assert len(runs) == 1 and runs[0].conclusion, (n, runs)
    assert world.store.outbox_rows("pending") == []


def test_a_side_effect_whose_worker_keeps_dying_is_given_up(world, monkeypatch):
    monkeypatch.setenv("PHASEGATE_MAX_ATTEMPTS", "2")
    fake, _repo, number, _head, private = seed(world)
    held = HeldCreations(fake.app, hold_s=300, updates=True)  # GitHub "hangs" on this one
    with serving(held) as base:
        connect(world, monkeypatch, base, private)
        pr_event(world, "pr-1", number)
        assert process_inbox()["decisions"] == 1
        [check] = [row for row in world.store.outbox_rows("pending") if row.kind == "github.check"]
        # The first worker dies creating the check run; the second takes it over, finds the
        # check run on the head commit, and dies updating it.
        for write in ("checks/create", "checks/update"):
            worker = start_worker(world, "deliver-outbox")
            try:
                wait_for(lambda write=write: fake.count(write) == 1, timeout=120)
            finally:
                kill_9(worker)
            restart(monkeypatch)
        held.holding = False
        totals = deliver_outbox()

    assert totals["failed"] == 0  # given up while claiming: not attempted a third time
    assert (fake.count("checks/create"), fake.count("checks/update")) == (1, 1)
    [row] = [r for r in world.store.outbox_rows() if r.id == check.id]
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.last_error == (
        "gave up after 2 attempts: its worker stopped before finishing it (claim taken over)"
    )
    assert world.store.outbox_rows("pending") == []  # the rest was delivered
    listed = subprocess.run(
        [sys.executable, "-m", "phasegate.cli", "outbox", "--status", "failed"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=world.root,
    )
    assert listed.returncode == 0, listed.stderr
    assert "github.check" in listed.stdout and "gave up after 2 attempts" in listed.stdout
