"""What to say in Slack about a decision, as outbox rows: the approval request and notices.

Keys say what a row is about, so the same decision queued twice is queued once:
``slack.request:<project>:<gate>[:#<pr>]:<gate digest>:<state>`` — one message per (project,
gate, pull request, digest), each new state of it (an approval arrived, the gate passed) an
update of that message, found again by the key prefix (see :mod:`integrations.slack.requests`).
Notices are keyed by what happened; a DM to an approver by the request and the person.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from gates.lifecycle import Move
from gates.policy import PolicySet
from gates.result import GateResult
from gates.store import Effect, Store
from integrations.slack import blocks, requests
from integrations.slack.requests import REQUEST

MESSAGE = "slack.message"
EPHEMERAL = "slack.ephemeral"
DIRECT = "slack.dm"
KINDS = (REQUEST, MESSAGE, EPHEMERAL, DIRECT)


def slack_ids(policies: PolicySet) -> dict[str, str]:
    return {p.id: p.slack for p in policies.people.values() if p.slack}


def mentions(policies: PolicySet, project: str, roles: list[str]) -> list[str]:
    ids = slack_ids(policies)
    people = dict.fromkeys(p.id for role in roles for p in policies.holders(project, role))
    return [blocks.mention(p, ids) for p in people]


def request(
    policies: PolicySet,
    result: GateResult,
    state: blocks.State = "open",
    pull_request: int | None = None,
) -> Effect | None:
    """The request message in the state this result shows; posted only while approvals are
    awaited, otherwise an update of a message that exists (or nothing)."""
    project = policies.projects[result.project]
    if project.slack is None or result.mode == "shadow" or not result.approvals:
        return None
    shown = {
        "state": state,
        "status": result.status,
        "approvals": [r.model_dump() for r in result.approvals],
        "rejections": [(r.person, r.reason) for r in result.rejections],
        "ignored": [(i.person, i.reason) for i in result.ignored],
    }
    fingerprint = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]
    key = requests.prefix(result.project, result.gate, result.gate_digest, pull_request)
    return (
        REQUEST,
        key + fingerprint,
        {
            "channel": project.slack.channel,
            "post": state == "open" and result.status == "awaiting_approval",
            "text": blocks.request_text(result, pull_request),
            "blocks": blocks.approval_request(result, slack_ids(policies), state, pull_request),
        },
    )


def direct_messages(
    policies: PolicySet, result: GateResult, pull_request: int | None
) -> Iterator[Effect]:
    """A DM to each person still asked, linking the request (gates with ``approval_dm``):
    one per person and request, however often the request is updated."""
    ids = slack_ids(policies)
    waiting = dict.fromkeys(p for r in result.approvals if r.missing for p in r.candidates)
    request_of = requests.prefix(result.project, result.gate, result.gate_digest, pull_request)
    where = f" (PR #{pull_request})" if pull_request is not None else ""
    for person in waiting:
        if person not in ids:
            continue
        text = (
            f"⏳ {result.title} for *{result.project}*{where} waits for your decision: "
            f"{result.summary}"
        )
        yield (
            DIRECT,
            f"{DIRECT}:{request_of}{person}",
            {"user": ids[person], "request": request_of, "text": text},
        )


def message(
    policies: PolicySet, project: str, key: str, text: str, roles: list[str]
) -> Effect | None:
    """A notice in the project's channel mentioning the holders of ``roles``."""
    config = policies.projects[project]
    if config.slack is None:
        return None
    people = mentions(policies, project, roles)
    return (
        MESSAGE,
        f"{MESSAGE}:{key}",
        {
            "channel": config.slack.channel,
            "text": text,
            "blocks": blocks.notification(text, people),
        },
    )


def decision(
    store: Store,
    policies: PolicySet,
    result: GateResult,
    move: Move | None,
    pull_request: int | None = None,
) -> Iterator[Effect]:
    """The request (new or updated) and the notices a decision calls for. A request that
    expired stays closed: a later change on the same evidence updates it without buttons."""
    if result.mode == "shadow":
        return
    gate = policies.gates[result.gate]
    roles = gate.notified_roles
    about = requests.about(result.project, result.gate, result.gate_digest, pull_request)
    where = f" (PR #{pull_request})" if pull_request is not None else ""
    closed = result.status == "awaiting_approval" and requests.expired(
        store, gate, result.project, result.gate_digest, result.evaluated_at
    )
    shown = request(policies, result, "expired" if closed else "open", pull_request)
    candidates = [
        shown,
        message(
            policies,
            result.project,
            f"advanced:{result.project}:{move.from_phase}:{move.to_phase}:{result.evaluated_at.isoformat()}",
            f"🚀 *{result.project}* advanced from *{move.from_phase}* to *{move.to_phase}*: "
            f"{result.title} passed{where}.",
            roles,
        )
        if move
        else None,
    ]
    if gate.approval_dm and shown is not None and shown[2]["post"]:
        candidates += direct_messages(policies, result, pull_request)
    if result.status == "blocked" and result.rejections:
        candidates += [
            message(
                policies,
                result.project,
                f"rejected:{about}:{r.person}",
                f"❌ {result.title} for *{result.project}*{where} was rejected by {r.person}: "
                f"{blocks.escape(r.reason)}",
                roles,
            )
            for r in result.rejections
        ]
    elif result.status == "blocked" and (pull_request is not None or gate.pull_requests is None):
        # A gate checked per pull request is told about on its PRs: evaluated for the project
        # itself (the default branch, no PR) it is blocked whenever no PR is merged yet.
        failing = "\n".join(
            f"• {blocks.escape(c.title)}: expected {blocks.escape(c.expected)}; "
            f"found {blocks.escape(c.found)}"
            for c in result.failing()[:10]
        )
        candidates.append(
            message(
                policies,
                result.project,
                f"blocked:{about}",
                f"❌ {result.title} blocks *{result.project}*{where}:\n{failing}",
                roles,
            )
        )
    yield from (c for c in candidates if c is not None)


def regressed(policies: PolicySet, project: str, move: Move, when: str) -> Effect | None:
    """A monitoring alert sent the project back: tell whoever must let it through again."""
    transition = policies.lifecycle.transition_from(move.to_phase)
    roles = policies.gates[transition.gate].notified_roles if transition else []
    return message(
        policies,
        project,
        f"regressed:{project}:{move.rule}:{when}",
        f"⚠️ *{project}* went back from *{move.from_phase}* to *{move.to_phase}*: "
        f"{blocks.escape(move.reason)}",
        roles,
    )


def ephemeral(channel: str, user: str, key: str, text: str, link_to: str | None = None) -> Effect:
    """A reply only the clicking user sees (a refusal, a confirmation); ``link_to``: the
    ``channel:ts`` of a message to link (the current request, for a stale click)."""
    return (
        EPHEMERAL,
        f"{EPHEMERAL}:{key}",
        {"channel": channel, "user": user, "text": text, "link_to": link_to},
    )
