"""What one approval request is: a gate of a project on one evidence digest, for the project
itself or for one pull request, and how long it stays open.

A gate checked per pull request has one standing per PR (see ``Store.latest_evaluations``):
a click on a PR's request is compared with that PR's latest evaluation, never with the
project-wide one (which reads the default branch, not the PR, and has another digest).
Every outbox row of a request shares the key prefix made here, so each state of the
message, its thread and its DMs find the message again.
"""

from __future__ import annotations

from datetime import datetime

from gates.policy import Gate
from gates.store import Store
from gates.store.tables import EvaluationRow

REQUEST = "slack.request"
AWAITING = "awaiting_approval"


def about(project: str, gate: str, digest: str, pull_request: int | None = None) -> str:
    """``project:gate:digest``, with ``#<n>:`` before the digest for a pull request (a digest
    is hex, so the two forms never share a prefix)."""
    scope = f"#{pull_request}:" if pull_request is not None else ""
    return f"{project}:{gate}:{scope}{digest}"


def prefix(project: str, gate: str, digest: str, pull_request: int | None = None) -> str:
    """The key prefix shared by every state of one approval request."""
    return f"{REQUEST}:{about(project, gate, digest, pull_request)}:"


def latest(store: Store, project: str, gate: str, pull_request: int | None) -> EvaluationRow | None:
    """The evaluation a request on this gate (of the project, or of this PR) must match."""
    return store.latest_evaluations(project).get((gate, pull_request))


def opened(store: Store, project: str, gate: str, digest: str) -> datetime | None:
    """When approvals were first asked for on this evidence: the request's age counts from
    the first evaluation that awaited approval with this gate digest."""
    return store.first_evaluated(project, gate, digest, AWAITING)


def expiry(gate: Gate, since: datetime | None) -> datetime | None:
    """When a request opened at ``since`` closes, if the gate's reminders close requests."""
    if since is None or gate.reminders is None or gate.reminders.expire_after is None:
        return None
    return since + gate.reminders.expire_after


def expired(store: Store, gate: Gate, project: str, digest: str, now: datetime) -> bool:
    until = expiry(gate, opened(store, project, gate.id, digest))
    return until is not None and now >= until
