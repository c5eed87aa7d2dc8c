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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows.decisions import record, regression
from flows.runtime import runtime
from gates.active import NoValidPolicies
from gates.evaluate import evaluate
from gates.events import Event, route
from gates.evidence import ProjectEvidence, assemble
from gates.policy import PolicySet
from integrations.inbound import normalise
from integrations.nudge import OUTBOX_EVENT, emit
from integrations.sources import SourceError


@dataclass
class Batch:
    """One project's share of a batch: the inbox rows and the events they carried."""

    rows: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


@task(
    name="collect-evidence",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=1),
    cache_policy=NO_CACHE,
)
def collect(source: str, projects: list[str]) -> dict[str, dict[str, Any]]:
    """One source, every project of the batch: one task per source, not per project, because
    each task run costs Prefect ~15 ms. A project the source cannot read fails alone (its
    entry holds the error); a source that is down raises and is retried with backoff."""
    rt = runtime()
    chosen = next(s for s in rt.sources if s.name == source)
    collected: dict[str, dict[str, Any]] = {}
    for project in projects:
        try:
            collected[project] = {"fragment": chosen.collect(rt.policies.current.projects[project])}
        except SourceError as exc:
            collected[project] = {"error": f"{source}: {exc}"}
    return collected


@task(name="decide-project", cache_policy=NO_CACHE)
def decide(
    project: str, events: list[dict[str, Any]], collected: list[dict[str, Any]]
) -> dict[str, Any]:
    """Apply regressions, then evaluate the gate out of the project's phase (and the next one,
    while gates keep passing on the same evidence)."""
    rt, logger = runtime(), get_run_logger()
    if errors := [c["error"] for c in collected if "error" in c]:
        raise SourceError("; ".join(errors))
    fragments = [c["fragment"] for c in collected]
    policies = rt.policies.current
    now = datetime.now(UTC)
    phase = rt.store.ensure_project(project, policies.lifecycle.initial_phase, now).phase
    moved = regression(rt.store, policies, project, phase, [Event(**e) for e in events], now)
    if moved:
        logger.warning("%s: %s → %s (%s)", project, moved.from_phase, moved.to_phase, moved.reason)
        phase = moved.to_phase
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


def _triage(batch: list[Any], policies: PolicySet, totals: dict[str, int]) -> dict[str, Batch]:
    """Read and route each event; finish at once those that concern no project (with why)."""
    rt, logger = runtime(), get_run_logger()
    work: dict[str, Batch] = defaultdict(Batch)
    for row in batch:
        totals["events"] += 1
        try:
            events = normalise(row.source, row.kind, row.payload, row.received_at)
        except Exception as exc:
            rt.store.finish_inbox_event(row.id, "failed", f"unreadable {row.source} payload: {exc}")
            totals["failed"] += 1
            continue
        routes = [route(policies, e) for e in events]
        projects = {p for r in routes for p in r.projects}
        if row.source == "slack":
            reason = "no handler for Slack interactions is installed yet"
        else:
            reason = "; ".join(r.reason for r in routes) or "the delivery held no events"
        if row.source == "slack" or not projects:
            rt.store.finish_inbox_event(row.id, "ignored", reason)
            logger.info("inbox #%s (%s %s) ignored: %s", row.id, row.source, row.kind, reason)
            totals["ignored"] += 1
            continue
        for project in projects:
            work[project].rows.append(row.id)
            work[project].events += [e.model_dump(mode="json") for e in events]
    return work


def _decide_all(work: dict[str, Batch]) -> dict[str, str]:
    """Collect (each source once, in parallel), then decide each project; the failures."""
    rt, logger = runtime(), get_run_logger()
    try:
        futures = [collect.submit(s.name, sorted(work)) for s in rt.sources]
        collected = [future.result() for future in futures]
    except Exception as exc:
        return dict.fromkeys(work, f"evidence collection failed: {exc}")
    decisions = {p: decide.submit(p, b.events, [c[p] for c in collected]) for p, b in work.items()}
    failures = {}
    for project, future in decisions.items():
        try:
            future.result()
        except Exception as exc:
            logger.error("deciding %s failed: %s", project, exc)
            failures[project] = f"{project}: {exc}"
    return failures


@flow(name="process-inbox", task_runner=ThreadPoolTaskRunner(max_workers=4))
def process_inbox(batch_size: int | None = None) -> dict[str, int]:
    rt, logger = runtime(), get_run_logger()
    for error in rt.policies.reload():
        logger.error("policy error (last valid set stays in force): %s", error)
    try:
        policies = rt.policies.current
    except NoValidPolicies as exc:
        logger.error("%s; events stay pending", exc)
        return {"events": 0}
    totals: dict[str, int] = defaultdict(int)
    reclaim = timedelta(seconds=rt.settings.reclaim_after_s)
    while batch := rt.store.claim_inbox_events(
        batch_size or rt.settings.batch_size, reclaim_after=reclaim
    ):
        work = _triage(batch, policies, totals)
        failures = _decide_all(work) if work else {}
        failed = {row: error for p, error in failures.items() for row in work[p].rows}
        for row_id, error in failed.items():  # reconcile re-drives these, up to max_attempts
            rt.store.finish_inbox_event(row_id, "failed", error)
        routed = {row for b in work.values() for row in b.rows}
        totals["decisions"] += len(work) - len(failures)
        totals["done"] += rt.store.finish_inbox_events(routed - failed.keys(), "done")
        if failed:
            totals["failed"] += len(failed)
    logger.info("processed: %s", dict(totals))
    if totals["decisions"]:
        emit(OUTBOX_EVENT, totals["decisions"])
    return dict(totals)
