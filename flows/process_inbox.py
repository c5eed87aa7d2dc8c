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
from flows.policy_check import check_policy_pull_request
from flows.runtime import runtime
from flows.slack_interactions import take
from gates.active import NoValidPolicies
from gates.evaluate import evaluate
from gates.events import Event, route
from gates.evidence import ProjectEvidence, assemble
from gates.policy import PolicySet
from integrations.github import effects as github_effects
from integrations.github.client import GithubUnavailable
from integrations.github.evidence import GithubSource
from integrations.github.inbound import RERUN
from integrations.github.intake import Intake
from integrations.inbound import normalise
from integrations.nudge import OUTBOX_EVENT, emit
from integrations.sources import ReadsEvents, SourceError

Unit = tuple[str, int | None]
"""What one decision is about: a project, and the pull request under review if any."""


@dataclass
class Batch:
    """One unit's share of a batch: the inbox rows and the events they carried."""

    rows: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _key(unit: Unit) -> str:
    return unit[0] if unit[1] is None else f"{unit[0]}#{unit[1]}"


@task(
    name="collect-evidence",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=1),
    cache_policy=NO_CACHE,
)
def collect(
    source: str, units: list[Unit], events: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, dict[str, Any]]:
    """One source, every unit of the batch: one task per source, not per project, because
    each task run costs Prefect ~15 ms. A unit the source cannot read fails alone (its entry
    holds the error); a source that is down raises and is retried with backoff. ``events``
    (per unit) go to sources that take facts from them rather than asking again."""
    rt = runtime()
    chosen = next(s for s in rt.sources if s.name == source)
    collected: dict[str, dict[str, Any]] = {}
    for project, pull in units:
        config = rt.policies.current.projects[project]
        try:
            if isinstance(chosen, ReadsEvents):
                seen = [Event(**e) for e in (events or {}).get(_key((project, pull)), [])]
                fragment = chosen.collect_after(config, pull, seen)
            else:
                fragment = chosen.collect(config, pull)
            collected[_key((project, pull))] = {"fragment": fragment}
        except SourceError as exc:
            collected[_key((project, pull))] = {"error": f"{source}: {exc}"}
    return collected


@task(name="decide-project", cache_policy=NO_CACHE)
def decide(
    project: str, pull: int | None, events: list[dict[str, Any]], collected: list[dict[str, Any]]
) -> dict[str, Any]:
    """For a project: apply regressions, then evaluate the gate out of its phase (and the
    next, while gates keep passing on the same evidence). For a pull request: evaluate the
    gates that check such PRs; the project still moves only through its own phase's gate."""
    rt, logger = runtime(), get_run_logger()
    slack = rt.slack is not None
    github = github_effects.Options.of(rt.settings) if rt.github is not None else None
    if errors := [c["error"] for c in collected if "error" in c]:
        raise SourceError("; ".join(errors))
    fragments = [c["fragment"] for c in collected]
    policies = rt.policies.current
    now = datetime.now(UTC)
    phase = rt.store.ensure_project(project, policies.lifecycle.initial_phase, now).phase
    if pull is None:
        moved = regression(
            rt.store,
            policies,
            project,
            phase,
            [Event(**e) for e in events],
            now,
            slack=slack,
            github=github,
        )
        if moved:
            logger.warning(
                "%s: %s → %s (%s)", project, moved.from_phase, moved.to_phase, moved.reason
            )
            phase = moved.to_phase
    config = policies.projects[project]
    models = config.mlflow.models if config.mlflow else []
    decisions = []
    pending = None if pull is None else _pull_request_gates(policies, fragments)
    for _ in policies.lifecycle.phases:
        evidence = assemble(ProjectEvidence(key=project, phase=phase, models=models), fragments)
        if pending is None:
            transition = policies.lifecycle.transition_from(phase)
            gate = policies.gates[transition.gate] if transition else None
        else:
            gate = pending.pop(0) if pending else None
        if gate is None:
            break
        approvals, waivers = (
            rt.store.approvals(project, gate.id),
            rt.store.waivers(project, gate.id),
        )
        result = evaluate(gate, evidence, approvals, waivers, now, policies)
        logger.info("%s%s · %s: %s", project, f" #{pull}" if pull else "", gate.id, result.summary)
        decisions.append({"gate": gate.id, "status": result.status})
        move = record(
            rt.store,
            policies,
            result,
            phase,
            evidence,
            github=github,
            slack=slack,
            rerun=next((e["subject"]["rerun"] for e in events if e["kind"] in RERUN), None),
        )
        if move is not None:
            logger.info("%s: %s → %s (%s)", project, move.from_phase, move.to_phase, move.reason)
            phase = move.to_phase
        elif pending is None:
            break
    return {"project": project, "pull_request": pull, "phase": phase, "decisions": decisions}


def _pull_request_gates(policies: PolicySet, fragments: list[dict[str, Any]]) -> list[Any]:
    pulls = [
        f["github"]["pull_request"]
        for f in fragments
        if (f.get("github") or {}).get("pull_request")
    ]
    if not pulls:
        return []
    return policies.gates_for_pull_request(pulls[0].get("branch", ""), pulls[0].get("labels", []))


def _policy_pull_requests(events: list[Event]) -> set[tuple[str, int]]:
    """Pull requests on the policy repository: they get the ``phasegate / policy`` check."""
    rt = runtime()
    wanted = (rt.settings.github_policy_repo or "").lower()
    if not wanted or rt.github is None:
        return set()
    return {
        (e.subject["repo"], int(e.subject["pull_request"]))
        for e in events
        if e.subject.get("repo", "").lower() == wanted and e.subject.get("pull_request")
    }


def _github_intake() -> Intake:
    rt = runtime()
    return Intake(
        rt.github,
        next((s for s in rt.sources if isinstance(s, GithubSource)), None),
        rt.policies,
        rt.settings.github_app_id,
        rt.settings.github_policy_repo,
        rt.settings.github_policy_path,
    )


def _triage(
    batch: list[Any], policies: PolicySet, totals: dict[str, int]
) -> tuple[dict[Unit, Batch], dict[tuple[str, int], list[int]], dict[int, str]]:
    """Read and route each event; finish at once those that concern no project (with why).
    Also returns notes to keep on rows that are done (what a policy push installed)."""
    rt, logger = runtime(), get_run_logger()
    work: dict[Unit, Batch] = defaultdict(Batch)
    policy_prs: dict[tuple[str, int], list[int]] = defaultdict(list)
    notes: dict[int, str] = {}
    intake = _github_intake()
    for row in batch:
        totals["events"] += 1
        try:
            events = normalise(row.source, row.kind, row.payload, row.received_at, row.delivery_id)
        except Exception as exc:
            rt.store.finish_inbox_event(row.id, "failed", f"unreadable {row.source} payload: {exc}")
            totals["failed"] += 1
            continue
        if row.source == "slack":
            unit, note = take(row, policies, totals)
            if unit is None:
                rt.store.finish_inbox_event(row.id, "ignored", note)
                logger.info("inbox #%s (slack %s): %s", row.id, row.kind, note)
                totals["ignored"] += 1
            else:
                work[unit].rows.append(row.id)
            continue
        if row.source == "github":
            try:
                taken = intake.take(row.kind, row.payload, events)
            except GithubUnavailable as exc:
                rt.store.finish_inbox_event(row.id, "failed", f"GitHub: {exc}")
                totals["failed"] += 1
                continue
            if not taken.events:
                rt.store.finish_inbox_event(row.id, taken.status, taken.note)
                logger.info("inbox #%s (github %s): %s", row.id, row.kind, taken.note)
                totals[taken.status] += 1
                continue
            events = taken.events
            if taken.note:
                notes[row.id] = taken.note
            if taken.policies_changed:
                policies = rt.policies.current
        for pull in _policy_pull_requests(events):
            policy_prs[pull].append(row.id)
        routes = [route(policies, e) for e in events]
        reason = "; ".join(r.reason for r in routes) or "the delivery held no events"
        if not any(r.projects for r in routes):
            if not any(row.id in rows for rows in policy_prs.values()):
                reason = "; ".join(filter(None, [notes.pop(row.id, None), reason]))
                rt.store.finish_inbox_event(row.id, "ignored", reason)
                logger.info("inbox #%s (%s %s) ignored: %s", row.id, row.source, row.kind, reason)
                totals["ignored"] += 1
            continue
        for event, routing in zip(events, routes, strict=True):
            pull = event.subject.get("pull_request")
            for project in routing.projects:
                unit = (project, int(pull) if pull else None)
                work[unit].rows.append(row.id)
                work[unit].events.append(event.model_dump(mode="json"))
    return work, policy_prs, notes


def _check_policies(policy_prs: dict[tuple[str, int], list[int]]) -> dict[int, str]:
    """Run the policy checks; the rows whose check failed, with the error."""
    futures = {pr: check_policy_pull_request.submit(*pr) for pr in policy_prs}
    failed: dict[int, str] = {}
    for (repo, number), future in futures.items():
        try:
            future.result()
        except Exception as exc:
            failed.update(
                dict.fromkeys(policy_prs[(repo, number)], f"policy check {repo}#{number}: {exc}")
            )
    return failed


def _decide_all(work: dict[Unit, Batch]) -> dict[Unit, str]:
    """Collect (each source once, in parallel), then decide each unit; the failures."""
    rt, logger = runtime(), get_run_logger()
    units = sorted(work, key=_key)
    events = {_key(unit): work[unit].events for unit in units}
    try:
        futures = [collect.submit(s.name, units, events) for s in rt.sources]
        collected = [future.result() for future in futures]
    except Exception as exc:
        return dict.fromkeys(work, f"evidence collection failed: {exc}")
    decisions = {
        unit: decide.submit(unit[0], unit[1], work[unit].events, [c[_key(unit)] for c in collected])
        for unit in units
    }
    failures = {}
    for unit, future in decisions.items():
        try:
            future.result()
        except Exception as exc:
            logger.error("deciding %s failed: %s", _key(unit), exc)
            failures[unit] = f"{_key(unit)}: {exc}"
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
        policies = rt.policies.current  # a policy push in the last batch may have changed it
        work, policy_prs, notes = _triage(batch, policies, totals)
        failures = _decide_all(work) if work else {}
        failed = {row: error for unit, error in failures.items() for row in work[unit].rows}
        failed |= _check_policies(policy_prs) if policy_prs else {}
        for row_id, error in failed.items():  # reconcile re-drives these, up to max_attempts
            rt.store.finish_inbox_event(row_id, "failed", error)
        routed = {row for b in work.values() for row in b.rows}
        routed |= {row for rows in policy_prs.values() for row in rows}
        totals["decisions"] += len(work) - len(failures)
        totals["done"] += rt.store.finish_inbox_events(routed - failed.keys(), "done")
        for row_id in notes.keys() & (routed - failed.keys()):
            rt.store.finish_inbox_event(row_id, "done", notes[row_id])
        if failed:
            totals["failed"] += len(failed)
    logger.info("processed: %s", dict(totals))
    if queued := totals["decisions"] + totals.get("replies", 0):
        emit(OUTBOX_EVENT, queued)
    return dict(totals)
