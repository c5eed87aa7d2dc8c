"""``phasegate serve`` drains the inbox the moment the receiver has stored an event.

The scale-out path goes receiver → Prefect event → deployment trigger → a worker starts a
flow run in a new process. On one box that path is most of the time from webhook to decision:
the runner polls for the triggered run, the new process imports everything and builds the
runtime again, a run that finds the previous one still draining waits for a concurrency slot
(30 s by default), and each run carries the heartbeat. ``phasegate serve`` instead keeps one
drainer process warm (imports done, runtime and connection pool built, heartbeat off) and
wakes it through a pipe: a single event's decision is then a fraction of a second of work.
It delivers the side effects of what it decided right after (``deliver-outbox``), rather
than nudging a deployment that would start yet another process for them. Each drain is still
a ``process-inbox`` (and ``deliver-outbox``) flow run, with its logs in the Prefect UI; the
deployments, their triggers and schedules stay for events nudged from elsewhere and retries.

A process of its own, not a thread of the receiver's: deciding a burst is seconds of Python,
and it must not take the interpreter away from the receiver, which answers Slack within 3 s.

Wake-ups coalesce: those that arrive while a drain runs wait in the pipe and are read at once
by the next one, which finds whatever came in meanwhile. When the serve process goes away the
pipe closes and the drainer finishes what it claimed and exits.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("phasegate.drain")

RESTART_PAUSE_S = 10.0
"""A drainer that exited sooner than this after it started is not started again before
this much time has passed: one that cannot start (a broken install, a bad setting) would
otherwise be a new process, and an error in the log, for every stored event."""


class Drainer:
    """The serve side: start the drainer process, wake it, stop it."""

    def __init__(self, restart_pause_s: float = RESTART_PAUSE_S) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self.restart_pause_s = restart_pause_s
        self._lock = threading.Lock()

    def __call__(self, inbox_id: int, source: str, kind: str) -> None:
        """The receiver's ``notify``: an event was stored."""
        self.wake()

    @property
    def pid(self) -> int | None:
        """The drainer process's id (for an operator's ``ps``, or a test's ``kill``)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        self._started = time.monotonic()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "flows.drain"], stdin=subprocess.PIPE, close_fds=True
        )
        assert self._process.stdin is not None
        os.set_blocking(self._process.stdin.fileno(), False)  # never hold the receiver up

    def wake(self) -> None:
        with self._lock:
            if self._process is None:
                return
            if self._process.poll() is not None:
                lived = time.monotonic() - self._started
                if lived < self.restart_pause_s:  # dying at start: not a process per event
                    return  # the events wait in the inbox for a later wake-up or reconcile
                log.error(
                    "the drainer exited (code %s, %.0f s after it started); starting it again",
                    self._process.returncode,
                    lived,
                )
                self._start_locked()
            assert self._process.stdin is not None
            try:
                os.write(self._process.stdin.fileno(), b".")
            except BlockingIOError:  # the pipe is full of wake-ups already: one is enough
                pass
            except OSError:  # it died just now; the next wake-up starts it again
                log.warning("could not wake the drainer", exc_info=True)

    def close(self, timeout_s: float = 30) -> int | None:
        """Let a drain in progress finish what it claimed, then stop; the exit code."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return None
        assert process.stdin is not None
        process.stdin.close()
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()  # its claims go stale and are taken over after a restart
            return process.wait()


def _without_heartbeat(run: Callable[[], object]) -> object:
    """The run heartbeat costs up to a second per run and tells nobody anything here: the
    drainer's own claims say whether it is alive. (A setting per thread: each thread enters it.)"""
    from prefect.settings import temporary_settings

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        return run()


def _deliver_when_asked(wanted: threading.Event, closing: threading.Event) -> None:
    """Side effects in a thread of their own, so that a new event never waits for them."""
    from flows.deliver_outbox import deliver_outbox

    while wanted.wait():
        wanted.clear()
        try:
            _without_heartbeat(deliver_outbox)
        except Exception:  # the rows stay in the outbox; deliver-outbox's schedule retries
            log.exception("deliver-outbox failed; its schedule will retry")
        if closing.is_set() and not wanted.is_set():  # asked again meanwhile: once more
            return


def _drain(deliver: threading.Event) -> None:
    from flows.process_inbox import process_inbox

    while os.read(sys.stdin.fileno(), 65536):  # blocks until woken; b"" once serve is gone
        try:
            totals = process_inbox(nudge_outbox=False)
        except Exception:  # the events stay in the inbox; reconcile re-drives them
            log.exception("process-inbox failed; reconcile will re-drive its events")
            continue
        if totals.get("decisions") or totals.get("replies"):
            deliver.set()  # the check run and the Slack message follow at once


def main() -> None:
    """The drainer process: one ``process-inbox`` run per read of the wake-up pipe, and a
    ``deliver-outbox`` run after those that queued side effects."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops serve; serve stops us
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    deliver, closing = threading.Event(), threading.Event()
    outbox = threading.Thread(target=_deliver_when_asked, args=(deliver, closing), daemon=True)
    outbox.start()
    _without_heartbeat(lambda: _drain(deliver))
    closing.set()  # serve is stopping: deliver what is queued, then go
    deliver.set()
    outbox.join(timeout=20)


if __name__ == "__main__":
    main()
