"""``process-inbox``: drain pending inbox events, decide each affected project once per batch.

Started by ``phasegate serve``'s drainer the moment an event is stored (``flows/drain.py``), by
a deployment trigger on ``phasegate.inbox.received`` (see ``prefect.yaml``) and by
``reconcile``. A burst of events coalesces: one batch claims up to ``batch_size`` events and
evaluates each project they concern once, over one fresh evidence snapshot. What to evaluate
and where the project goes is the engine's (``gates.progress``); this only orchestrates.

A failure leaves the event ``failed`` with the error; ``reconcile`` retries it later, up to
``PHASEGATE_MAX_ATTEMPTS``. Exactly once *in effect*: an event is claimed before it is worked
on (the claim renewed while it is) and finished after; if the process dies in between, the
claim goes stale and the event is processed again, but the evaluation it leads to records the
same decision, the phase moves only from the phase it was decided in, and side effects are
queued under idempotency keys. Two runs at once take different events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows.claims import kept_claimed
from flows.decisions import record, regression
from flows.policy_check import check_policy_pull_request
from flows.runtime import runtime
from flows.slack_interactions import take
from gates.active import NoValidPolicies
from gates.events import Event, route
from gates.policy import PolicySet
from gates.progress import Step, last_sent_back, progress
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
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """Each event with the inbox row it came in."""


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
        config = rt.policies.current.projects.get(project)
        if config is None:  # routed under policies a push in this batch has since replaced
            collected[_key((project, pull))] = {
                "error": f"project '{project}' is not in the policies in force any more "
                "(a policy change removed or renamed it)"
            }
            continue
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


Share = list[tuple[Unit, list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]]
"""Units to decide, each with its events (paired with their inbox rows) and its evidence."""

WORKERS = 4
RECORD_TOGETHER = 10
"""Decisions written in one SQLite transaction: few enough that the write lock is soon free
again (PostgreSQL commits each write on its own: see :meth:`Store.batch`)."""


@task(name="decide-projects", cache_policy=NO_CACHE)
def decide(share: Share) -> dict[str, str]:
    """Decide a share of the batch's units one after another; those that failed, with why.

    One task per share, not per unit: a task run costs Prefect about as much CPU as a
    decision itself. Decisions are recorded ``RECORD_TOGETHER`` at a time, in one SQLite
    transaction (one commit, not one per row), and made before it opens: the store's write
    lock is held only for the writing, and the receiver gets its turn in between. Each unit
    fails alone, and its decision is a line of this task's log."""
    rt, logger = runtime(), get_run_logger()
    failures = {}

    def failed(unit: Unit, exc: Exception) -> None:
        logger.error("deciding %s failed: %s", _key(unit), exc)
        failures[_key(unit)] = f"{_key(unit)}: {exc}"

    for start in range(0, len(share), RECORD_TOGETHER):
        decided = []
        for unit, events, collected in share[start : start + RECORD_TOGETHER]:
            try:
                decided.append((unit, events, _decide(unit, events, collected)))
            except Exception as exc:
                failed(unit, exc)
        with rt.store.batch():
            for unit, events, steps in decided:
                try:
                    _record(unit, events, steps)
                except Exception as exc:
                    failed(unit, exc)
    return failures


def _decide(
    unit: Unit, events: list[tuple[int, dict[str, Any]]], collected: list[dict[str, Any]]
) -> list[Step]:
    """For a project: apply regressions, then what the engine decides from its phase
    (``gates.progress``). For a pull request: the same for the gates that check such PRs."""
    (project, pull), rt, logger = unit, runtime(), get_run_logger()
    if errors := [c["error"] for c in collected if "error" in c]:
        raise SourceError("; ".join(errors))
    policies = rt.policies.current
    now = datetime.now(UTC)
    phase = rt.store.ensure_project(project, policies.lifecycle.initial_phase, now).phase
    regressed = None
    if pull is None:
        caused = [(inbox_id, Event(**e)) for inbox_id, e in events]
        regressed = regression(
            rt.store,
            policies,
            project,
            phase,
            caused,
            now,
            slack=rt.slack is not None,
            github=_github_options(),
        )
        if regressed:
            logger.warning(
                "%s: %s → %s (%s)",
                project,
                regressed.from_phase,
                regressed.to_phase,
                regressed.reason,
            )
            phase = regressed.to_phase
    return progress(
        policies,
        project,
        phase,
        [c["fragment"] for c in collected],
        lambda gate: rt.store.approvals(project, gate),
        lambda gate: rt.store.waivers(project, gate),
        now,
        pull_request=pull is not None,
        sent_back=last_sent_back(rt.store.transitions(project)),
        hold=regressed is not None,
    )


def _github_options() -> github_effects.Options | None:
    rt = runtime()
    return github_effects.Options.of(rt.settings) if rt.github is not None else None


def _record(unit: Unit, events: list[tuple[int, dict[str, Any]]], steps: list[Step]) -> None:
    """Write down a unit's steps and make their moves, as long as the project is where each
    step assumed it would be."""
    (project, pull), rt, logger = unit, runtime(), get_run_logger()
    policies = rt.policies.current
    github, slack = _github_options(), rt.slack is not None
    rerun = next((e["subject"]["rerun"] for _, e in events if e["kind"] in RERUN), None)
    for step in steps:
        result = step.result
        logger.info(
            "%s%s · %s: %s", project, f" #{pull}" if pull else "", result.gate, result.summary
        )
        move = record(
            rt.store,
            policies,
            result,
            step.phase,
            step.evidence,
            github,
            slack,
            rerun,
            move=step.move,
        )
        if move is not None:
            logger.info("%s: %s → %s (%s)", project, move.from_phase, move.to_phase, move.reason)
        elif step.move is not None:  # the steps after it assumed this move: they do not hold
            logger.info("%s had left %s (another run decided it first)", project, step.phase)
            break


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


@dataclass
class Routed:
    """What one inbox row asks for: the units to decide (each with the event it carries, if
    any) and the policy pull requests to check; or, with ``finished``, the status and reason
    it is finished with at once. ``note`` is kept on the row once it is done (what a policy
    push installed); ``policies_changed``: the rows after it are routed with the new set."""

    units: list[tuple[Unit, dict[str, Any] | None]] = field(default_factory=list)
    pulls: set[tuple[str, int]] = field(default_factory=set)
    finished: tuple[str, str] | None = None
    note: str | None = None
    policies_changed: bool = False


def _triage(
    batch: list[Any], policies: PolicySet, totals: dict[str, int]
) -> tuple[dict[Unit, Batch], dict[tuple[str, int], list[int]], dict[int, str]]:
    """Read and route each event; finish at once those that concern no project (with why).
    Also returns notes to keep on rows that are done (what a policy push installed).

    One event at a time: an event that cannot be read or routed fails alone, with the reason,
    and the rest of the batch goes on, so one bad delivery never holds up the others.
    """
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
            error = f"unreadable {row.source} payload: {exc}"
        else:
            try:
                routed = _route(row, events, policies, totals, intake)
            except GithubUnavailable as exc:
                error = f"GitHub: {exc}"
            except Exception as exc:
                error = f"could not route this {row.source} event ({row.kind}): {exc!r}"
            else:
                if routed.policies_changed:
                    policies = rt.policies.current
                if routed.finished is not None:
                    status, why = routed.finished
                    rt.store.finish_inbox_event(row.id, status, why)
                    logger.info(
                        "inbox #%s (%s %s) %s: %s", row.id, row.source, row.kind, status, why
                    )
                    totals[status] += 1
                if routed.note:
                    notes[row.id] = routed.note
                for unit, event in routed.units:
                    work[unit].rows.append(row.id)
                    if event is not None:
                        work[unit].events.append((row.id, event))
                for pull in routed.pulls:
                    policy_prs[pull].append(row.id)
                continue
        logger.error("inbox #%s (%s %s) failed: %s", row.id, row.source, row.kind, error)
        rt.store.finish_inbox_event(row.id, "failed", error)
        totals["failed"] += 1
    return work, policy_prs, notes


def _route(
    row: Any, events: list[Event], policies: PolicySet, totals: dict[str, int], intake: Intake
) -> Routed:
    if row.source == "slack":
        unit, note = take(row, policies, totals)
        return Routed(units=[(unit, None)]) if unit else Routed(finished=("ignored", note))
    taken_note, changed = None, False
    if row.source == "github":
        taken = intake.take(row.kind, row.payload, events)
        if not taken.events:
            return Routed(finished=(taken.status, taken.note or "nothing to do"))
        events, taken_note, changed = taken.events, taken.note, taken.policies_changed
        if changed:
            policies = runtime().policies.current
    pulls = _policy_pull_requests(events)
    routes = [route(policies, e) for e in events]
    if not any(r.projects for r in routes):
        if pulls:
            return Routed(pulls=pulls, note=taken_note, policies_changed=changed)
        reason = "; ".join(r.reason for r in routes) or "the delivery held no events"
        why = "; ".join(filter(None, [taken_note, reason]))
        return Routed(finished=("ignored", why), policies_changed=changed)
    units: list[tuple[Unit, dict[str, Any] | None]] = []
    for event, routing in zip(events, routes, strict=True):
        pull = event.subject.get("pull_request")
        for project in routing.projects:
            units.append(((project, int(pull) if pull else None), event.model_dump(mode="json")))
    return Routed(units, pulls, note=taken_note, policies_changed=changed)


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
    events = {_key(unit): [event for _, event in work[unit].events] for unit in units}
    try:
        futures = [collect.submit(s.name, units, events) for s in rt.sources]
        collected = [future.result() for future in futures]
    except Exception as exc:
        return dict.fromkeys(work, f"evidence collection failed: {exc}")
    shares = [units[n::WORKERS] for n in range(min(WORKERS, len(units)))]
    futures = [
        decide.submit([(u, work[u].events, [c[_key(u)] for c in collected]) for u in share])
        for share in shares
    ]
    failures: dict[Unit, str] = {}
    for share, future in zip(shares, futures, strict=True):
        try:
            failed = future.result()
        except Exception as exc:
            logger.error("deciding %s failed: %s", ", ".join(map(_key, share)), exc)
            failed = {_key(u): f"{_key(u)}: {exc}" for u in share}
        failures |= {u: failed[_key(u)] for u in share if _key(u) in failed}
    return failures


@flow(name="process-inbox", task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def process_inbox(batch_size: int | None = None, nudge_outbox: bool = True) -> dict[str, int]:
    """Drain the inbox. ``nudge_outbox``: tell ``deliver-outbox`` there is work (off when the
    caller delivers the outbox itself, as ``phasegate serve``'s drainer does)."""
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
        batch_size or rt.settings.batch_size,
        reclaim_after=reclaim,
        max_attempts=rt.settings.max_attempts,
    ):
        renew = partial(rt.store.renew_inbox_claims, [row.id for row in batch])
        with kept_claimed(renew, reclaim, f"claim on {len(batch)} inbox event(s)"):
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
        policies = rt.policies.current  # a policy push in this batch may have changed it
        if failed:
            totals["failed"] += len(failed)
    logger.info("processed: %s", dict(totals))
    if nudge_outbox and (queued := totals["decisions"] + totals.get("replies", 0)):
        emit(OUTBOX_EVENT, queued)
    return dict(totals)
