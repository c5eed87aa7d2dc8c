"""What a click in Slack means, and whether it may count.

A stored interaction (already verified by the receiver) becomes a :class:`Decision` — an
approval from the Approve button, a rejection from the reason dialog — and :func:`judge`
decides whether it is recorded: the Slack user must be a known person holding a role the
gate's approval rules name, not the author when the gate forbids it, the request must not
have expired, and the evidence must still be the one the message showed — compared with
the latest evaluation of the same scope: the project, or the pull request the request is
about. Every refusal says what was expected, what was found, and what to do; nothing is
recorded then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gates.policy import PolicySet
from gates.result import GateResult
from gates.store import Store
from integrations.slack import blocks, requests


class NotOurs(ValueError):
    """An interaction phasegate did not ask for (another app's button, a malformed value)."""


@dataclass(frozen=True)
class Decision:
    action: Literal["approve", "reject", "reject_dialog"]
    """``reject_dialog``: the Reject button (its dialog asks for the reason)."""
    user: str
    project: str
    gate: str
    digest: str
    channel: str | None
    message_ts: str | None
    reason: str | None = None
    pull_request: int | None = None
    """The pull request the request is about (a gate checked per PR), else None."""


def _about(text: str | None) -> dict[str, Any]:
    try:
        about = json.loads(text or "")
    except json.JSONDecodeError:
        raise NotOurs("its value is not phasegate's JSON") from None
    if not isinstance(about, dict) or not all(
        isinstance(about.get(k), str) for k in ("project", "gate", "digest")
    ):
        raise NotOurs("its value does not name a project, gate and digest")
    pull = about.get("pull_request")
    if pull is not None and (not isinstance(pull, int) or isinstance(pull, bool)):
        raise NotOurs("its pull request is not a number")
    return about


def read(payload: dict[str, Any]) -> Decision:
    """The decision a Slack interaction payload carries, or :class:`NotOurs`."""
    user = (payload.get("user") or {}).get("id")
    if not isinstance(user, str):
        raise NotOurs("it names no Slack user")
    if payload.get("type") == "block_actions":
        action = next(
            (
                a
                for a in payload.get("actions") or []
                if isinstance(a, dict) and a.get("action_id") in (blocks.APPROVE, blocks.REJECT)
            ),
            None,
        )
        if action is None:
            raise NotOurs("it has no phasegate Approve/Reject action")
        about = _about(action.get("value"))
        return Decision(
            action="approve" if action["action_id"] == blocks.APPROVE else "reject_dialog",
            user=user,
            project=about["project"],
            gate=about["gate"],
            digest=about["digest"],
            pull_request=about.get("pull_request"),
            channel=(payload.get("channel") or {}).get("id"),
            message_ts=(payload.get("container") or {}).get("message_ts")
            or (payload.get("message") or {}).get("ts"),
        )
    view = payload.get("view") or {}
    if (
        payload.get("type") == "view_submission"
        and view.get("callback_id") == blocks.REASON_CALLBACK
    ):
        about = _about(view.get("private_metadata"))
        values = (view.get("state") or {}).get("values") or {}
        reason = ((values.get(blocks.REASON_BLOCK) or {}).get(blocks.REASON_INPUT) or {}).get(
            "value"
        )
        return Decision(
            action="reject",
            user=user,
            project=about["project"],
            gate=about["gate"],
            digest=about["digest"],
            pull_request=about.get("pull_request"),
            channel=about.get("channel"),
            message_ts=about.get("ts"),
            reason=(reason or "").strip() or None,
        )
    raise NotOurs(f"phasegate has no use for a Slack '{payload.get('type')}' interaction")


@dataclass(frozen=True)
class Verdict:
    person: str | None
    refusal: str | None = None
    """Why nothing is recorded, in words for the person who clicked; None: record it."""
    current: str | None = None
    """``channel:ts`` of the request to decide on instead (a stale click), to link to."""


def judge(decision: Decision, policies: PolicySet, store: Store, now: datetime) -> Verdict:
    """May this person's decision be recorded, and if not, why not (see the module doc)."""
    if decision.project not in policies.projects or decision.gate not in policies.gates:
        return Verdict(
            None,
            f"This request is for gate `{decision.gate}` of project `{decision.project}`, which "
            "the policies in force no longer have. Nothing was recorded.",
        )
    gate = policies.gates[decision.gate]
    person = policies.person(decision.user)
    if person is None:
        return Verdict(
            None,
            f"phasegate does not know you (Slack user `{decision.user}`): no person in the "
            f"policies has `slack: {decision.user}`. Ask your team lead to add it to your "
            "entry in policies/people.yaml. Nothing was recorded.",
        )
    needed = list(dict.fromkeys(r for rule in gate.approvals for r in rule.roles))
    held = policies.roles_of(decision.project, person.id)
    if not held.intersection(needed):
        chaser = sorted(held.intersection(gate.reminders.escalate_to if gate.reminders else []))
        return Verdict(
            person.id,
            f"You ({person.id}) may not decide gate `{gate.id}` of `{decision.project}`: it "
            f"needs the role {' or '.join(needed) or '(none: the gate asks for no approval)'}; "
            f"you hold {', '.join(sorted(held)) or 'no role'} in this project. "
            + (
                f"An escalation asks the {' and '.join(chaser)} to follow up with the "
                "approvers; it does not let them decide. "
                if chaser
                else ""
            )
            + "Nothing was recorded.",
        )
    latest = requests.latest(store, decision.project, gate.id, decision.pull_request)
    if latest is None or latest.gate_digest != decision.digest:
        current = (
            store.outbox_external_id(
                requests.prefix(
                    decision.project, gate.id, latest.gate_digest, decision.pull_request
                )
            )
            if latest
            else None
        )
        now_on = f"now {latest.gate_digest[:12]}" if latest else "it has not been evaluated since"
        return Verdict(
            person.id,
            f"The evidence changed since this request was posted (it showed "
            f"{decision.digest[:12]}, {now_on}), so a decision on it would not count. "
            + ("" if current else "A new request follows when the gate awaits approval again. ")
            + "Nothing was recorded.",
            current=current,
        )
    until = requests.expiry(
        gate, requests.opened(store, decision.project, gate.id, decision.digest)
    )
    if until is not None and now >= until:
        return Verdict(
            person.id,
            f"This request expired on {until:%Y-%m-%d %H:%M} UTC (gate `{gate.id}` closes "
            f"requests after {gate.reminders.expire_after if gate.reminders else ''}). A new "
            "request is posted when the evidence changes. Nothing was recorded.",
        )
    result = GateResult.model_validate(latest.result)
    mine = [r for r in result.approvals if held.intersection(r.roles)]
    if not any(person.id in r.approvers or person.id in r.candidates for r in mine):
        return Verdict(
            person.id,
            f"You ({person.id}) are an author of the work gate `{gate.id}` checks (you opened "
            "its issue or pull request, or registered the model version), and the gate does "
            f"not let its authors decide it. Ask another holder of {' or '.join(needed)}. "
            "Nothing was recorded.",
        )
    if decision.action == "reject" and not decision.reason:
        return Verdict(person.id, "A rejection needs a reason. Nothing was recorded.")
    return Verdict(person.id)
