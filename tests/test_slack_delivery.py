"""deliver-outbox against a slow Slack: each message posted once, however long Slack takes.

With Slack taking its time (timeouts, rate limits), performing a side effect can outlast
``PHASEGATE_RECLAIM_AFTER_S``. Other runs (the schedule, a trigger, reconcile) must then not
take it over while its worker lives, and a run whose claim was taken over anyway must leave
the row to the run that took it. Real Prefect runs in threads, the real store, and a fake
Slack over real HTTP that posts at once and answers late.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from flows.deliver_outbox import deliver_outbox
from flows.runtime import runtime
from integrations.slack.effects import MESSAGE
from tests.fake_slack import TOKEN, FakeSlack
from tests.servers import serving, wait_for

pytestmark = pytest.mark.usefixtures("prefect_harness")
NOTICES = 4
RECLAIM_AFTER_S = 1
ANSWER_AFTER_S = 2.5
"""Each answer takes longer than the reclaim time: without renewals, claims go stale."""


class SlowAnswers:
    """The fake Slack, answering ``chat.postMessage`` only ``after_s`` after posting: the
    message is in the channel, the caller still waits (a slow API, as Slack can be)."""

    def __init__(self, app: Any, after_s: float) -> None:
        self.app = app
        self.after_s = after_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat.postMessage"):
            await self.app(scope, receive, send)
            return
        answer: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        await asyncio.sleep(self.after_s)
        for message in answer:
            await send(message)


@dataclass
class Slack:
    fake: FakeSlack
    answers: SlowAnswers

    def posted(self) -> list[str]:
        return sorted(m["text"] for m in self.fake.of("chat.postMessage"))


@pytest.fixture
def slack(world, monkeypatch):
    fake = FakeSlack()
    answers = SlowAnswers(fake.app(), ANSWER_AFTER_S)
    with serving(answers) as base:
        monkeypatch.setenv("PHASEGATE_SLACK_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("PHASEGATE_SLACK_API_URL", f"{base}/api/")
        monkeypatch.setenv("PHASEGATE_RECLAIM_AFTER_S", str(RECLAIM_AFTER_S))
        runtime.cache_clear()
        yield Slack(fake, answers)


def queue_notices(world) -> list[int]:
    return [
        world.store.enqueue_outbox(
            idempotency_key=f"slack.message:churn-model:notice-{n}",
            kind=MESSAGE,
            payload={"channel": "#churn-model", "text": f"notice {n}", "blocks": []},
        )[0].id
        for n in range(NOTICES)
    ]


EACH_ONCE = [f"notice {n}" for n in range(NOTICES)]


def test_messages_slack_is_slow_to_answer_are_posted_once(world, slack):
    queue_notices(world)
    stop = threading.Event()

    def runs() -> list[dict[str, int]]:
        """deliver-outbox again and again, as its schedule, its trigger and reconcile do."""
        totals = []
        while not stop.is_set():
            totals.append(deliver_outbox())
            stop.wait(0.3)
        return totals

    with ThreadPoolExecutor(2) as pool:
        both = [pool.submit(runs) for _ in range(2)]
        try:
            wait_for(lambda: {r.status for r in world.store.outbox_rows()} == {"done"}, 120)
        finally:
            stop.set()
        totals = [t for run in both for t in run.result(timeout=120)]

    assert slack.posted() == EACH_ONCE
    assert sum(t["done"] for t in totals) == NOTICES
    assert not any(t.get("taken_over") for t in totals), totals
    assert {(r.status, r.attempts) for r in world.store.outbox_rows()} == {("done", 1)}


def test_a_row_taken_over_meanwhile_is_left_to_the_run_that_took_it(world, slack, monkeypatch):
    monkeypatch.setenv("PHASEGATE_RECLAIM_AFTER_S", "300")  # the taker's claims stay its own
    runtime.cache_clear()
    queue_notices(world)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(deliver_outbox)
        wait_for(lambda: slack.fake.of("chat.postMessage"), timeout=60)
        # Another worker takes the rows over (it took the first one for dead: its renewals
        # failed, its process stalled), while the first still waits for Slack's answer.
        taken = world.store.claim_outbox(10, reclaim_after=timedelta(0))
        assert len(taken) == NOTICES
        totals = first.result(timeout=120)
    assert totals == {"done": 0, "retry": 0, "failed": 0, "taken_over": 1}
    assert slack.posted() == ["notice 0"]  # the one in flight; the others are the taker's
    [in_flight] = [r for r in world.store.outbox_rows() if r.idempotency_key.endswith("-0")]
    assert (in_flight.status, in_flight.attempts) == ("processing", 1)
    assert in_flight.external_id  # what it made is kept, so it is not made again

    slack.answers.after_s = 0
    monkeypatch.setenv("PHASEGATE_RECLAIM_AFTER_S", "0")  # the taker died too: a later run
    runtime.cache_clear()
    assert deliver_outbox()["done"] == NOTICES
    assert slack.posted() == EACH_ONCE
