"""kill -9 in the middle of a batch: after a restart every event is processed exactly once in
effect, and no side effect is performed twice."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from prefect.settings import get_current_settings

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.runtime import runtime
from tests.paths import ROOT
from tests.servers import wait_for

pytestmark = pytest.mark.usefixtures("prefect_harness")
PROJECTS = [f"p{n}" for n in range(8)]


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
        now = datetime.now(UTC)
        world.store.ensure_project(key, "framing", now)
        world.store.transition(
            project=key,
            to_phase="experimentation",
            kind="advance",
            reason="test setup",
            evaluation_id=None,
            at=now,
        )
        for n in range(5):
            world.event(f"{key}-{n}", repo=f"acme/{key}")


def test_kill_9_mid_batch_then_restart(world, monkeypatch):
    add_projects(world)
    env = {**os.environ, "PREFECT_API_URL": get_current_settings().api.url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "crash_worker.py")],
        env=env,
        cwd=world.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: world.store.inbox_counts().get("processing"), timeout=60)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert world.store.inbox_counts().get("processing", 0) > 0, "the kill did not land mid-batch"

    monkeypatch.setenv("PHASEGATE_RECLAIM_AFTER_S", "0")  # the dead worker's claims are stale now
    runtime.cache_clear()
    process_inbox()
    process_inbox()  # and a second, redundant run changes nothing
    deliver_outbox()
    deliver_outbox()

    assert world.store.inbox_counts() == {"done": len(PROJECTS) * 5}
    for key in PROJECTS:
        moves = [(t.from_phase, t.to_phase) for t in world.store.transitions(key)]
        assert moves.count(("experimentation", "model-development")) == 1, (key, moves)
        assert world.store.project(key).phase == "model-development"
    performed = collections.Counter(d["key"] for d in world.decisions())
    assert performed and max(performed.values()) == 1, performed
    assert {d["project"] for d in world.decisions()} == set(PROJECTS)
