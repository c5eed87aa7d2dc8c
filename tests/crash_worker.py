"""Run process-inbox with a slow evidence source, to be killed mid-batch by test_crash.py.

The slowness is the only thing added: it opens a window in which a batch is claimed but not
finished, which is where a crash hurts.
"""

from __future__ import annotations

import time

from flows.process_inbox import process_inbox
from flows.runtime import runtime


class Slow:
    def __init__(self, source, delay_s: float) -> None:
        self.source = source
        self.name = source.name
        self.delay_s = delay_s

    def collect(self, project):
        time.sleep(self.delay_s)
        return self.source.collect(project)


if __name__ == "__main__":
    rt = runtime()
    rt.sources = [Slow(s, 2.0) for s in rt.sources]
    process_inbox()
