"""The engine's :class:`GateResult` as Slack Block Kit: the approval request and its dialog.

Built with ``slack_sdk.models.blocks``, which knows Block Kit's shapes; texts are cut to
Slack's limits here (3,000 characters a section, 75 a button label) so a long explanation
never makes Slack refuse the whole message. The buttons carry what the click is about
(project, gate, gate digest, and the pull request when the gate is checked on one) so the
decision is bound to the evidence the person was shown and is re-evaluated on that PR.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from gates.result import CheckResult, GateResult

APPROVE = "phasegate.approve"
REJECT = "phasegate.reject"
REASON_CALLBACK = "phasegate.reject_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"

SECTION_LIMIT = 3000
SHOWN_CHECKS = 12
_MARK = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "waived": "〰️", "error": "⚠️"}
_HEAD = {
    "awaiting_approval": "⏳ Approval requested",
    "passed": "✅ Gate passed",
    "blocked": "❌ Gate blocked",
    "error": "⚠️ Gate could not be decided",
}
State = Literal["open", "expired"]


def _cut(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Slack's mrkdwn reserves &, < and >; user-written text must not form links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def button_value(result: GateResult, pull_request: int | None = None) -> str:
    about: dict[str, Any] = {
        "project": result.project,
        "gate": result.gate,
        "digest": result.gate_digest,
    }
    if pull_request is not None:
        about["pull_request"] = pull_request
    return json.dumps(about, separators=(",", ":"))


def _scope(pull_request: int | None) -> str:
    return f" · PR #{pull_request}" if pull_request is not None else ""


def mention(person: str, slack_ids: Mapping[str, str]) -> str:
    return f"<@{slack_ids[person]}>" if person in slack_ids else person


def _check_line(check: CheckResult) -> str:
    title = escape(check.title)
    if check.source:
        title = f"<{check.source}|{title}>"
    line = f"{_MARK[check.outcome]} {title}"
    if check.outcome in ("failed", "error"):
        line += f" — expected {escape(check.expected)}; found {escape(check.found)}"
    return line


def _approval_lines(result: GateResult, slack_ids: Mapping[str, str]) -> list[str]:
    lines = []
    for rule in result.approvals:
        got = ", ".join(mention(p, slack_ids) for p in rule.approvers) or "nobody yet"
        line = f"*{'/'.join(rule.roles)}*: {len(rule.approvers)} of {rule.required} ({got})"
        if rule.missing:
            asked = ", ".join(mention(p, slack_ids) for p in rule.candidates)
            line += f" — waiting for {asked or 'nobody: no one holds this role in the project'}"
        lines.append(("✅ " if not rule.missing else "⏳ ") + line)
    lines += [
        f"❌ rejected by {mention(r.person, slack_ids)}: {escape(r.reason)}"
        for r in result.rejections
    ]
    lines += [f"🚫 not counted: {i.person}: {escape(i.reason)}" for i in result.ignored]
    return lines


def request_text(result: GateResult, pull_request: int | None = None) -> str:
    """The notification text (and the fallback for clients that cannot show blocks)."""
    return f"{result.title} · {result.project}{_scope(pull_request)}: {result.summary}"


def approval_request(
    result: GateResult,
    slack_ids: Mapping[str, str],
    state: State = "open",
    pull_request: int | None = None,
) -> list[dict[str, Any]]:
    """The request message: what is gated, the evidence, who is asked, and the buttons while
    the request is open and still needs someone."""
    head = "⌛ Approval request expired" if state == "expired" else _HEAD[result.status]
    nodes = [n for n in result.nodes() if not n.children and n.outcome != "skipped"]
    shown = "\n".join(_check_line(n) for n in nodes[:SHOWN_CHECKS])
    if len(nodes) > SHOWN_CHECKS:
        shown += f"\n… and {len(nodes) - SHOWN_CHECKS} more"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=_cut(f"{head}: {result.title}", 150))),
        SectionBlock(
            text=MarkdownTextObject(
                text=_cut(
                    f"*Project* `{result.project}` · *gate* `{result.gate}`"
                    f"{_scope(pull_request)}\n{result.summary}"
                )
            )
        ),
        SectionBlock(text=MarkdownTextObject(text=_cut(f"*Evidence*\n{shown or 'no checks'}"))),
        SectionBlock(
            text=MarkdownTextObject(
                text=_cut("*Approvals*\n" + "\n".join(_approval_lines(result, slack_ids)))
            )
        ),
    ]
    if state == "open" and result.status == "awaiting_approval":
        value = button_value(result, pull_request)
        blocks.append(
            ActionsBlock(
                block_id="phasegate.decision",
                elements=[
                    ButtonElement(text="Approve", action_id=APPROVE, value=value, style="primary"),
                    ButtonElement(text="Reject", action_id=REJECT, value=value, style="danger"),
                ],
            )
        )
    elif state == "expired":
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text="This request expired without a decision; a new one is posted "
                        "when the evidence changes."
                    )
                ]
            )
        )
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"evidence `{result.evidence_digest[:12]}` · gate digest "
                    f"`{result.gate_digest[:12]}` · evaluated "
                    f"{result.evaluated_at:%Y-%m-%d %H:%M} UTC"
                )
            ]
        )
    )
    return [block.to_dict() for block in blocks]


def reason_dialog(value: str, channel: str | None, message_ts: str | None) -> dict[str, Any]:
    """The modal a Reject click opens: a required reason, and what the rejection is about."""
    about = json.loads(value)
    metadata = json.dumps({**about, "channel": channel, "ts": message_ts}, separators=(",", ":"))
    view = View(
        type="modal",
        callback_id=REASON_CALLBACK,
        private_metadata=metadata,
        title=PlainTextObject(text="Reject gate"),
        submit=PlainTextObject(text="Reject"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=_cut(
                        f"Reject gate `{about['gate']}` of project `{about['project']}`"
                        f"{_scope(about.get('pull_request'))}. "
                        "The reason is shown with the decision everywhere."
                    )
                )
            ),
            InputBlock(
                block_id=REASON_BLOCK,
                label=PlainTextObject(text="Reason"),
                element=PlainTextInputElement(
                    action_id=REASON_INPUT, multiline=True, min_length=3, max_length=2000
                ),
                optional=False,
            ),
        ],
    )
    return view.to_dict()


def notification(text: str, people: list[str]) -> list[dict[str, Any]]:
    """A short notice; ``people`` are mentions of whom it concerns."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=_cut(text)))]
    if people:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_cut(" ".join(people)))]))
    return [block.to_dict() for block in blocks]
