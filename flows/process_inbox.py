"""``process-inbox``: drain pending inbox events, decide each affected project once per batch.

Started by a deployment trigger on ``phasegate.inbox.received`` (see ``prefect.yaml``) and by
``reconcile``. A burst of events coalesces: one batch claims up to ``batch_size`` events and
evaluates each project they concern once, over one fresh evidence snapshot.

A failure leaves the event ``failed`` with the error; ``reconcile`` retries it later, up to
``PHASEGATE_MAX_ATTEMPTS``. Exactly once *in effect*: an event is claimed before it is worked on and finished after; if
the process dies in between, the claim goes stale and the event is processed again, but the
evaluation it leads to records the same decision, the phase moves only from the phase the
gate guards, and side effects are queued under idempotency keys.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows.decisions import record, regression
from flows.runtime import runtime
from gates.active import NoValidPolicies
from gates.evaluate import evaluate
from gates.events import Event, route
from gates.evidence import ProjectEvidence, assemble
from integrations.inbound import normalise
from integrations.nudge import OUTBOX_EVENT, emit


@task(
    name="collect-evidence",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=1),
    cache_policy=NO_CACHE,
)
def collect(source: str, project: str) -> dict[str, Any]:
    rt = runtime()
    chosen = next(s for s in rt.sources if s.name == source)
    return chosen.collect(rt.policies.current.projects[project])


@task(name="decide-project", cache_policy=NO_CACHE)
def decide(project: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply regressions, then evaluate the gate out of the project's phase (and the next one,
    while gates keep passing on the same evidence)."""
    rt, logger = runtime(), get_run_logger()
    policies = rt.policies.current
    now = datetime.now(UTC)
    phase = rt.store.ensure_project(project, policies.lifecycle.initial_phase, now).phase
    moved = regression(rt.store, policies, project, phase, [Event(**e) for e in events], now)
    if moved:
        logger.warning("%s: %s → %s (%s)", project, moved.from_phase, moved.to_phase, moved.reason)
        phase = moved.to_phase
    fragments = [f.result() for f in [collect.submit(s.name, project) for s in rt.sources]]
    decisions = []
    for _ in policies.lifecycle.phases:
        transition = policies.lifecycle.transition_from(phase)
        if transition is None:
            break
        config = policies.projects[project]
        models = config.mlflow.models if config.mlflow else []
        evidence = assemble(ProjectEvidence(key=project, phase=phase, models=models), fragments)
        gate = policies.gates[transition.gate]
        approvals, waivers = (
            rt.store.approvals(project, gate.id),
            rt.store.waivers(project, gate.id),
        )
        result = evaluate(gate, evidence, approvals, waivers, now, policies)
        logger.info("%s · %s: %s", project, gate.id, result.summary)
        decisions.append({"gate": gate.id, "status": result.status})
        move = record(rt.store, policies, result, phase)
        if move is None:
            break
        logger.info("%s: %s → %s (%s)", project, move.from_phase, move.to_phase, move.reason)
        phase = move.to_phase
    return {"project": project, "phase": phase, "decisions": decisions}


@flow(name="process-inbox")
def process_inbox(batch_size: int | None = None) -> dict[str, int]:
    rt, logger = runtime(), get_run_logger()
    for error in rt.policies.reload():
        logger.error("policy error (last valid set stays in force): %s", error)
    try:
        policies = rt.policies.current
    except NoValidPolicies as exc:
        logger.error("%s; events stay pending", exc)
        return {"events": 0}
    size = batch_size or rt.settings.batch_size
    totals: dict[str, int] = defaultdict(int)
    while batch := rt.store.claim_inbox_events(
        size, reclaim_after=timedelta(seconds=rt.settings.reclaim_after_s)
    ):
        rows_of: dict[str, list[int]] = defaultdict(list)
        events_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in batch:
            totals["events"] += 1
            try:
                events = normalise(row.source, row.kind, row.payload, row.received_at)
            except Exception as exc:
                rt.store.finish_inbox_event(
                    row.id, "failed", f"unreadable {row.source} payload: {exc}"
                )
                totals["failed"] += 1
                continue
            if row.source == "slack":
                reason = "no handler for Slack interactions is installed yet"
                rt.store.finish_inbox_event(row.id, "ignored", reason)
                totals["ignored"] += 1
                continue
            routes = [route(policies, e) for e in events]
            projects = {p for r in routes for p in r.projects}
            if not projects:
                reason = "; ".join(r.reason for r in routes) or "the delivery held no events"
                rt.store.finish_inbox_event(row.id, "ignored", reason)
                logger.info("inbox #%s (%s %s) ignored: %s", row.id, row.source, row.kind, reason)
                totals["ignored"] += 1
                continue
            for project in projects:
                rows_of[project].append(row.id)
                events_of[project] += [e.model_dump(mode="json") for e in events]
        futures = {p: decide.submit(p, events_of[p]) for p in events_of}
        failed: dict[int, str] = {}
        for project, future in futures.items():
            try:
                future.result()
                totals["decisions"] += 1
            except Exception as exc:
                logger.error("deciding %s failed: %s", project, exc)
                failed.update(dict.fromkeys(rows_of[project], f"{project}: {exc}"))
        for row in batch:
            if row.id in failed:  # reconcile re-drives it later, until max_attempts
                rt.store.finish_inbox_event(row.id, "failed", failed[row.id])
                totals["failed"] += 1
            elif any(row.id in ids for ids in rows_of.values()):
                rt.store.finish_inbox_event(row.id, "done")
                totals["done"] += 1
    logger.info("processed: %s", dict(totals))
    if totals["decisions"]:
        emit(OUTBOX_EVENT, totals["decisions"])
    return dict(totals)
