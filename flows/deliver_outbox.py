"""``deliver-outbox``: perform queued side effects, each once in effect.

A row is claimed just before it is performed, so two workers never do the same one, and its
claim is renewed while it is, however slow the other side is. A handler that made something
returns its id, which is stored so a retry updates instead of making a second one. A row
whose worker died on it ``PHASEGATE_MAX_ATTEMPTS`` times is given up (``failed``, "gave up
after N attempts") instead of being taken over forever. Rate limits and outages come back as
:class:`RetryLater` and the row waits for the time the other side asked for (``Retry-After``)
or an exponential backoff.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from prefect import flow, get_run_logger

from flows.claims import kept_claimed
from flows.decisions import DECISION_LOG
from flows.runtime import Runtime, runtime
from gates.store.tables import OutboxRow
from integrations.actions import DecisionLog, Handler, Permanent, RetryLater
from integrations.github import effects as github_effects
from integrations.github.actions import GateCheck, PhaseLabel, PullRequestComment
from integrations.slack.actions import handlers as slack_handlers


def handlers(rt: Runtime) -> dict[str, Handler]:
    known: dict[str, Handler] = {DECISION_LOG: DecisionLog(Path(".phasegate") / "decisions.jsonl")}
    if rt.github is not None:
        known[github_effects.CHECK] = GateCheck(rt.github, rt.store)
        known[github_effects.PHASE_LABEL] = PhaseLabel(rt.github, rt.store)
        known[github_effects.PR_COMMENT] = PullRequestComment(rt.github)
    if rt.slack is not None:
        known |= slack_handlers(rt.slack, rt.store)
    return known


@flow(name="deliver-outbox")
def deliver_outbox() -> dict[str, int]:
    """Perform what is due, one row at a time, each once per run (in id order: a retry it
    asked for waits for a later run).

    A row is claimed just before it is performed, never held waiting in a batch: taking the
    claim is the check that no other run holds the row, and a worker that dies holds (and
    spends an attempt of) only the row it was performing. While that row is performed its
    claim is renewed (``flows/claims.py``), however long the other side takes; should the
    claim be taken over anyway (the renewals failed, the process stalled), the attempt is
    not recorded over the run that took it (``taken_over`` in the totals)."""
    rt, logger = runtime(), get_run_logger()
    known = handlers(rt)
    totals = {"done": 0, "retry": 0, "failed": 0}
    reclaim = timedelta(seconds=rt.settings.reclaim_after_s)
    performing: dict[int, int] = {}  # the row being performed -> its claim
    renew = partial(rt.store.renew_outbox_claims, performing)
    last = 0
    with kept_claimed(renew, reclaim, "claim on the side effect being performed"):
        while rows := rt.store.claim_outbox(
            1, reclaim_after=reclaim, max_attempts=rt.settings.max_attempts, after=last
        ):
            [row] = rows
            performing[row.id] = row.attempts
            try:
                outcome = _deliver(rt, known, row)
            finally:
                performing.clear()
            totals[outcome] = totals.get(outcome, 0) + 1
            last = row.id
    logger.info("outbox: %s", totals)
    return totals


def _deliver(rt: Runtime, known: dict[str, Handler], row: OutboxRow) -> str:
    """Perform one claimed row and record the attempt; what became of it (a key of the
    totals), ``taken_over`` if another run holds the row now."""
    logger = get_run_logger()
    handler = known.get(row.kind)
    made, retry_after = None, None
    try:
        if handler is None:
            raise Permanent(f"no handler for side effects of kind '{row.kind}'")
        made = handler(row.idempotency_key, row.payload, row.external_id, row.attempts > 0)
    except RetryLater as exc:
        backoff = exc.after_s if exc.after_s is not None else 2 ** min(row.attempts, 10)
        final = row.attempts + 1 >= rt.settings.max_attempts
        status, error, retry_after = "failed" if final else "pending", str(exc), backoff
        logger.warning("%s %s: %s (retry in %ss)", row.kind, row.idempotency_key, exc, backoff)
        outcome = "failed" if final else "retry"
    except Exception as exc:  # Permanent, or a bug: report it, never loop on it
        status, error, outcome = "failed", f"{type(exc).__name__}: {exc}", "failed"
        logger.error("%s %s failed: %s", row.kind, row.idempotency_key, exc)
    else:
        status, error, outcome = "done", None, "done"
    finished = rt.store.finish_outbox(
        row.id,
        status,
        external_id=made,
        error=error,
        retry_after=None if retry_after is None else timedelta(seconds=retry_after),
        claim=row.attempts,
    )
    if finished is None:
        logger.warning(
            "%s %s: taken over by another run while it was performed (this run's claim went "
            "stale); its outcome is that run's to record",
            row.kind,
            row.idempotency_key,
        )
        return "taken_over"
    return outcome
