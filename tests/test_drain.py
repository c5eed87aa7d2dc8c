"""`phasegate serve`'s drainer: a warm process that decides an event the moment it is stored."""

from __future__ import annotations

import os
import signal

import pytest
from prefect.settings import get_current_settings

from flows.drain import Drainer
from tests.paths import ROOT
from tests.servers import wait_for

pytestmark = pytest.mark.usefixtures("prefect_harness")


def done(world, delivery: str) -> bool:
    return any(r.delivery_id == delivery and r.status == "done" for r in world.store.inbox_events())


@pytest.fixture
def drainer_env(world, monkeypatch):
    """A project with evidence, and the environment a drainer process started by serve has."""
    world.use_evidence("problem-framed.awaiting.json")
    monkeypatch.setenv("PREFECT_API_URL", get_current_settings().api.url)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_the_drainer_decides_when_woken_delivers_and_comes_back_after_a_crash(world, drainer_env):
    drainer = Drainer(restart_pause_s=0)
    drainer.start()
    try:
        world.event("d-1")
        drainer(1, "github", "issues.edited")  # what the receiver calls once it has stored it
        wait_for(lambda: done(world, "d-1"), timeout=120, every=0.1)
        # It delivered what it decided itself: no deliver-outbox run was needed for it.
        assert wait_for(world.decisions, timeout=30)[0]["status"] == "awaiting_approval"

        crashed = drainer.pid
        os.kill(crashed, signal.SIGKILL)  # a crash of the drainer process
        wait_for(lambda: os.waitpid(crashed, os.WNOHANG)[0] == crashed, timeout=10)
        world.event("d-2", kind="issues.labeled")
        drainer(2, "github", "issues.labeled")  # finds it dead and starts it again
        wait_for(lambda: done(world, "d-2"), timeout=120, every=0.1)
        assert drainer.pid != crashed
    finally:
        exit_code = drainer.close()
    assert exit_code == 0  # closing the pipe let it finish and exit


def test_a_drainer_that_dies_at_once_is_not_started_again_for_every_event(world, drainer_env):
    drainer = Drainer(restart_pause_s=3)
    drainer.start()
    try:
        crashed = drainer.pid
        os.kill(crashed, signal.SIGKILL)  # as if it could not start
        wait_for(lambda: os.waitpid(crashed, os.WNOHANG)[0] == crashed, timeout=10)
        world.event("d-1")
        drainer(1, "github", "issues.edited")
        assert drainer.pid == crashed  # within the pause: left alone, the event waits
        wait_for(lambda: (drainer(1, "github", "issues.edited"), drainer.pid != crashed)[1])
        wait_for(lambda: done(world, "d-1"), timeout=120, every=0.1)
    finally:
        drainer.close()
