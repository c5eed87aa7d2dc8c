"""``deliver-outbox``: perform queued side effects, each once in effect.

Rows are claimed before they are performed, so two workers never do the same one; a handler
that made something returns its id, which is stored so a retry updates instead of making a
second one. Rate limits and outages come back as :class:`RetryLater` and the row waits for
the time the other side asked for (``Retry-After``) or an exponential backoff.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import flow, get_run_logger

from flows.decisions import DECISION_LOG
from flows.runtime import Runtime, runtime
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
def deliver_outbox(limit: int = 100) -> dict[str, int]:
    rt, logger = runtime(), get_run_logger()
    known = handlers(rt)
    totals = {"done": 0, "retry": 0, "failed": 0}
    reclaim = timedelta(seconds=rt.settings.reclaim_after_s)
    while rows := rt.store.claim_outbox(limit, reclaim_after=reclaim):
        for row in rows:
            handler = known.get(row.kind)
            try:
                if handler is None:
                    raise Permanent(f"no handler for side effects of kind '{row.kind}'")
                made = handler(row.idempotency_key, row.payload, row.external_id, row.attempts > 0)
            except RetryLater as exc:
                backoff = exc.after_s if exc.after_s is not None else 2 ** min(row.attempts, 10)
                final = row.attempts + 1 >= rt.settings.max_attempts
                rt.store.finish_outbox(
                    row.id,
                    "failed" if final else "pending",
                    error=str(exc),
                    retry_after=timedelta(seconds=backoff),
                )
                logger.warning(
                    "%s %s: %s (retry in %ss)", row.kind, row.idempotency_key, exc, backoff
                )
                totals["failed" if final else "retry"] += 1
            except Exception as exc:  # Permanent, or a bug: report it, never loop on it
                rt.store.finish_outbox(row.id, "failed", error=f"{type(exc).__name__}: {exc}")
                logger.error("%s %s failed: %s", row.kind, row.idempotency_key, exc)
                totals["failed"] += 1
            else:
                rt.store.finish_outbox(row.id, "done", external_id=made)
                totals["done"] += 1
        if len(rows) < limit:
            break
    logger.info("outbox: %s", totals)
    return totals
