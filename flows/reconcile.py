"""``reconcile``, on a schedule: make sure nothing waits forever because a webhook or a nudge
was lost.

It re-drives failed events (up to the attempt limit), lets ``process-inbox`` reclaim events
whose worker died, queues a re-evaluation of every project (evidence can change without an
event: an approval expires, a file is pushed while the webhook was down), and delivers what
is left in the outbox. Pending Slack approval requests are reminded, escalated and
expired as their gate's ``reminders`` say, and what Slack refused for them is tried again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.runtime import runtime
from integrations.slack.reminders import follow_ups


@flow(name="reconcile")
def reconcile() -> dict[str, int]:
    rt, logger = runtime(), get_run_logger()
    retried = rt.store.retry_failed_inbox(rt.settings.max_attempts)
    now = datetime.now(UTC)
    queued = 0
    for key in rt.policies.current.projects:
        _, created = rt.store.add_inbox_event(
            source="phasegate",
            delivery_id=f"reconcile:{key}:{now:%Y-%m-%dT%H:%M}",
            kind="reconcile",
            payload={"subject": {"project": key}},
            received_at=now,
        )
        queued += created
    logger.info("re-driving %d failed event(s); re-evaluating %d project(s)", retried, queued)
    processed = process_inbox(nudge_outbox=False)  # the outbox is delivered below
    reminded = 0  # after the evaluations: a request is followed up on the latest evidence
    for kind, key, payload in follow_ups(rt.policies.current, rt.store, now) if rt.slack else ():
        reminded += rt.store.enqueue_outbox(
            idempotency_key=key, kind=kind, payload=payload, reopen_failed=True
        )[1]
    delivered = deliver_outbox()
    return {
        "retried": retried,
        "queued": queued,
        "reminded": reminded,
        **processed,
        **{f"outbox_{k}": v for k, v in delivered.items()},
    }
