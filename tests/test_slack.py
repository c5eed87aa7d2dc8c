"""Slack approvals end to end: signed clicks through the real receiver, the flows on a real
Prefect, and a fake Slack Web API over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.reconcile import reconcile
from flows.runtime import runtime
from integrations.receiver import create_app
from integrations.slack import blocks
from phasegate.settings import Settings
from tests import signing
from tests.fake_slack import TOKEN, WORKSPACE, FakeSlack, fake_slack
from tests.servers import client, serving, wait_for
from tests.world import World

pytestmark = pytest.mark.usefixtures("prefect_harness")

BOB, ALICE, ERIN = "U01BOB0001", "U01ALICE01", "U01ERIN001"


@dataclass
class Env:
    world: World
    slack: FakeSlack
    http: httpx.Client

    def click(self, user: str, value: str, action: str = blocks.APPROVE, **sign) -> int:
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "trigger_id": f"trigger-{uuid.uuid4()}",
            "channel": {"id": "C0CHURN01"},
            "container": {"type": "message", "message_ts": "1700000000.000001"},
            "actions": [
                {
                    "action_id": action,
                    "value": value,
                    "type": "button",
                    "action_ts": str(time.time()),
                }
            ],
        }
        body = signing.slack_body(payload)
        headers = signing.slack(body, **sign)
        return self.http.post("/slack/interactions", content=body, headers=headers).status_code

    def request(self) -> tuple[str, dict]:
        """The latest approval request in the channel: its ts and message."""
        ts = max(
            self.slack.messages, key=lambda t: t if _is_request(self.slack.messages[t]) else ""
        )
        return ts, self.slack.messages[ts]

    def approvals(self) -> list:
        return self.world.store.approvals("churn-model", "problem-framed")

    def ephemerals(self) -> list[str]:
        return [a["text"] for a in self.slack.of("chat.postEphemeral")]


def _is_request(message: dict) -> bool:
    return any(b.get("type") == "header" for b in message.get("blocks", []))


def _button(message: dict) -> str:
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    return actions["elements"][0]["value"]


def _text(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


@pytest.fixture
def env(world, monkeypatch):
    with fake_slack() as (slack, url):
        monkeypatch.setenv("PHASEGATE_SLACK_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("PHASEGATE_SLACK_API_URL", url)
        monkeypatch.setenv("PHASEGATE_SLACK_SIGNING_SECRET", signing.SLACK_SECRET)
        runtime.cache_clear()
        app = create_app(Settings(), world.store)
        with serving(app) as base, client(base) as http:
            yield Env(world, slack, http)


def _evaluate(env: Env, delivery: str) -> None:
    env.world.event(delivery)
    process_inbox()
    deliver_outbox()


def test_approvals_in_slack_advance_the_project_and_update_one_message(env):
    env.world.use_evidence("problem-framed.passed.json")
    _evaluate(env, "d-1")
    [posted] = env.slack.of("chat.postMessage")
    assert posted["channel"] == "#churn-model"
    assert f"<@{BOB}>" in _text(posted) and f"<@{ALICE}>" in _text(posted)  # who is asked
    ts, message = env.request()
    value = json.loads(_button(message))
    assert value["project"] == "churn-model" and value["gate"] == "problem-framed"

    _evaluate(env, "d-2")  # the same evidence again: no second message
    assert len(env.slack.of("chat.postMessage")) == 1

    assert env.click(BOB, _button(message)) == 200
    assert env.click(BOB, _button(message)) == 200  # a double click
    process_inbox()
    deliver_outbox()
    assert [(a.person, a.decision) for a in env.approvals()] == [("bob", "approve")]
    assert len(env.slack.of("chat.postMessage")) == 1
    updated = env.slack.messages[ts]
    assert "1 of 1" in _text(updated) and f"waiting for <@{ALICE}>" in _text(updated)
    assert env.world.store.project("churn-model").phase == "framing"

    assert env.click(ALICE, _button(message)) == 200
    process_inbox()
    deliver_outbox()
    assert env.world.store.project("churn-model").phase == "data"
    final = env.slack.messages[ts]
    assert "Gate passed" in _text(final) and not any(
        b["type"] == "actions" for b in final["blocks"]
    )
    notices = [m["text"] for m in env.slack.of("chat.postMessage")[1:]]
    assert any("advanced from *framing* to *data*" in n for n in notices)
    assert env.ephemerals() == []


def test_clicks_that_may_not_count_are_refused_and_change_nothing(env):
    env.world.use_evidence("problem-framed.passed.json")
    _evaluate(env, "d-1")
    _, message = env.request()
    old = _button(message)

    assert env.click("U0NOBODY1", old) == 200
    assert env.click(ERIN, old) == 200
    process_inbox()
    deliver_outbox()
    unknown, wrong_role = env.ephemerals()
    assert "does not know you" in unknown and "people.yaml" in unknown
    assert "may not decide" in wrong_role and "business-owner or ds-lead" in wrong_role
    assert "data-scientist" in wrong_role

    # the evidence changes: a new request, and a click on the old one is stale
    evidence = env.world.checkout / ".phasegate" / "evidence.json"
    data = json.loads(evidence.read_text())
    data["github"]["issues"][0]["sections"]["Constraints"] += " Budget: 2 weeks."
    evidence.write_text(json.dumps(data))
    _evaluate(env, "d-2")
    assert len([m for m in env.slack.messages.values() if _is_request(m)]) == 2
    new_ts, new_message = env.request()
    assert env.click(BOB, old) == 200
    process_inbox()
    deliver_outbox()
    stale = env.ephemerals()[-1]
    assert "evidence changed" in stale
    assert f"{WORKSPACE}/archives/C0CHURN01/p{new_ts.replace('.', '')}" in stale  # Slack's link

    # the request expired: backdate when it was first asked for
    latest = env.world.store.last_evaluations("churn-model")["problem-framed"]
    env.world.store.record_evaluation(
        project="churn-model",
        gate="problem-framed",
        status="awaiting_approval",
        mode="enforce",
        policy_hash="old",
        evidence_digest=latest.evidence_digest,
        gate_digest=latest.gate_digest,
        result=latest.result,
        at=datetime.now(UTC) - timedelta(days=8),
    )
    assert env.click(BOB, _button(new_message)) == 200
    process_inbox()
    deliver_outbox()
    assert "expired" in env.ephemerals()[-1]

    # replayed (older than 5 minutes) and forged requests never reach the inbox
    before = len(env.world.store.inbox_events())
    assert env.click(BOB, _button(new_message), stamp=int(time.time()) - 301) == 401
    assert env.click(BOB, _button(new_message), secret="forged") == 401
    assert len(env.world.store.inbox_events()) == before

    assert env.approvals() == []
    assert env.world.store.project("churn-model").phase == "framing"


def test_the_author_may_not_approve_their_own_work(env):
    env.world.use_evidence("problem-framed.passed.json")
    evidence = env.world.checkout / ".phasegate" / "evidence.json"
    data = json.loads(evidence.read_text())
    data["subject"] = {"kind": "issue", "author": "bob-biz"}
    evidence.write_text(json.dumps(data))
    _evaluate(env, "d-1")
    _, message = env.request()
    assert env.click(BOB, _button(message)) == 200
    process_inbox()
    deliver_outbox()
    assert "author" in env.ephemerals()[-1]
    assert env.approvals() == []


def test_reject_asks_for_a_reason_and_blocks_the_gate(env):
    env.world.use_evidence("problem-framed.passed.json")
    _evaluate(env, "d-1")
    ts, message = env.request()
    assert env.click(BOB, _button(message), action=blocks.REJECT) == 200
    [opened] = wait_for(lambda: env.slack.of("views.open"))
    view = opened["view"]
    assert view["callback_id"] == blocks.REASON_CALLBACK
    submission = {
        "type": "view_submission",
        "user": {"id": BOB},
        "view": {
            "id": "V0REASON01",
            "hash": "h1",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {
                    blocks.REASON_BLOCK: {
                        blocks.REASON_INPUT: {"type": "plain_text_input", "value": "Wrong KPI"}
                    }
                }
            },
        },
    }
    body = signing.slack_body(submission)
    assert (
        env.http.post("/slack/interactions", content=body, headers=signing.slack(body)).status_code
        == 200
    )
    process_inbox()
    deliver_outbox()
    [rejection] = env.approvals()
    assert (rejection.person, rejection.decision, rejection.reason) == (
        "bob",
        "reject",
        "Wrong KPI",
    )
    latest = env.world.store.last_evaluations("churn-model")["problem-framed"]
    assert latest.status == "blocked"
    assert "rejected by <@U01BOB0001>: Wrong KPI" in _text(env.slack.messages[ts])
    assert any("rejected by bob: Wrong KPI" in m["text"] for m in env.slack.of("chat.postMessage"))
    assert env.world.store.project("churn-model").phase == "framing"


def test_a_regression_by_a_monitoring_alert_is_told_to_the_owners(env):
    env.world.use_evidence("monitoring-attached.passed.json")
    now = datetime.now(UTC)
    env.world.move_to("operation")
    alert = signing.alertmanager(labels={"project": "churn-model"})
    env.world.store.add_inbox_event(
        source="monitoring", delivery_id="a-1", kind="alert.firing", payload=alert, received_at=now
    )
    process_inbox()
    deliver_outbox()
    [notice] = [m for m in env.slack.of("chat.postMessage") if "went back" in m["text"]]
    assert "from *operation* to *model-development*" in notice["text"]
    assert "<@U01DAVE001>" in _text(notice)  # ml-engineer: the gate out of model-development


def _backdate(env: Env, ago: timedelta) -> None:
    """Make the open request look ``ago`` old: its first evaluation awaiting approval on this
    evidence is what a request's age counts from."""
    latest = env.world.store.last_evaluations("churn-model")["problem-framed"]
    env.world.store.record_evaluation(
        project="churn-model",
        gate="problem-framed",
        status="awaiting_approval",
        mode="enforce",
        policy_hash="earlier",
        evidence_digest=latest.evidence_digest,
        gate_digest=latest.gate_digest,
        result=latest.result,
        at=datetime.now(UTC) - ago,
    )


def _in_thread(env: Env, ts: str) -> list[str]:
    return [m["text"] for m in env.slack.of("chat.postMessage") if m.get("thread_ts") == ts]


def _edit(env: Env, path: str, old: str, new: str) -> None:
    file = env.world.root / "policies" / path
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new))


def test_reconcile_reminds_escalates_and_expires_in_the_requests_thread(env):
    _edit(env, "gates/problem-framed.yaml", "escalate_to: [ds-lead]", "escalate_to: [data-owner]")
    env.world.use_evidence("problem-framed.passed.json")
    _evaluate(env, "d-1")
    ts, message = env.request()

    _backdate(env, timedelta(hours=25))
    reconcile()
    [reminder] = _in_thread(env, ts)
    assert "Reminder" in reminder
    reconcile()  # every five minutes: the reminder is sent once
    assert len(_in_thread(env, ts)) == 1

    _backdate(env, timedelta(hours=73))
    reconcile()
    escalation = _in_thread(env, ts)[-1]
    assert "Escalated to data-owner: please follow up with them" in escalation
    assert "does not let you approve; only business-owner or ds-lead can decide" in escalation
    [notice] = [m for m in env.slack.of("chat.postMessage") if m["text"] == escalation]
    assert "<@U01CAROL01>" in _text(notice)  # the data owner is asked to chase
    assert f"<@{BOB}>" in _text(notice)  # ... the people who decide

    assert env.click("U01CAROL01", _button(message)) == 200  # escalated to, not an approver
    process_inbox()
    deliver_outbox()
    refusal = env.ephemerals()[-1]
    assert "may not decide" in refusal and "it does not let them decide" in refusal
    assert env.approvals() == []

    _backdate(env, timedelta(days=8))
    reconcile()
    closed = env.slack.messages[ts]
    assert "expired" in _text(closed) and not any(b["type"] == "actions" for b in closed["blocks"])

    # a change on the same evidence after expiry updates the request, and it stays closed
    _edit(env, "projects/churn-model.yaml", "business-owner: [bob]", "business-owner: [bob, frank]")
    _evaluate(env, "d-2")
    updated = env.slack.messages[ts]
    assert "U01FRANK01" in _text(updated)  # the update was made ...
    assert "expired" in _text(updated)  # ... and kept the request closed
    assert not any(b["type"] == "actions" for b in updated["blocks"])


def test_a_blocked_gate_is_told_with_its_failing_checks(env):
    env.world.use_evidence("problem-framed.blocked.json")
    _evaluate(env, "d-1")
    [notice] = [m for m in env.slack.of("chat.postMessage") if "blocks" in m["text"]]
    assert "Problem framed blocks *churn-model*" in notice["text"]
    assert "expected" in notice["text"] and "found" in notice["text"]
    assert "Success criteria" in notice["text"]  # the failing check, by what it found
    assert f"<@{BOB}>" in _text(notice) and f"<@{ALICE}>" in _text(notice)
    _evaluate(env, "d-2")  # the same evidence again: told once
    assert len([m for m in env.slack.of("chat.postMessage") if "blocks" in m["text"]]) == 1


def test_an_older_state_held_back_by_a_rate_limit_does_not_overwrite_a_newer_one(env):
    env.world.use_evidence("problem-framed.passed.json")
    env.slack.fail("chat.postMessage", status=429, retry_after=15)
    _evaluate(env, "d-1")  # the request (no approval yet) waits for Retry-After
    assert env.slack.messages == {}
    [waiting] = [r for r in env.world.store.outbox_rows("pending") if r.kind == "slack.request"]
    assert env.click(BOB, _button(waiting.payload)) == 200
    process_inbox()
    deliver_outbox()  # bob's state is posted while the first state still waits
    ts, message = env.request()
    assert "1 of 1 (<@U01BOB0001>)" in _text(message)
    [still] = [r for r in env.world.store.outbox_rows("pending") if r.id == waiting.id]
    assert still.not_before is not None
    time.sleep(max(0.0, (still.not_before - datetime.now(UTC)).total_seconds()) + 0.5)
    deliver_outbox()  # now the first state is due
    assert env.world.store.outbox_rows("pending") == []
    assert "1 of 1 (<@U01BOB0001>)" in _text(env.slack.messages[ts])
    assert len(env.slack.of("chat.postMessage")) == 2  # the 429 and the request


def test_a_message_slack_refused_is_sent_by_reconcile_once_the_cause_is_gone(env, monkeypatch):
    env.world.use_evidence("problem-framed.passed.json")
    env.slack.fail("chat.postMessage", error="not_in_channel")
    _evaluate(env, "d-1")
    assert env.slack.messages == {}
    listed = subprocess.run(
        [sys.executable, "-m", "phasegate.cli", "outbox", "--status", "failed"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "slack.request" in listed.stdout and "failed" in listed.stdout
    assert "not_in_channel" in listed.stdout and "/invite @phasegate" in listed.stdout

    reconcile()  # the bot was invited meanwhile: the request goes out
    ts, message = env.request()
    assert "Approval requested" in _text(message)

    # Slack down for longer than the retries last: the update is failed, then sent
    monkeypatch.setenv("PHASEGATE_MAX_ATTEMPTS", "1")
    runtime.cache_clear()
    env.slack.fail("chat.update", status=503)
    assert env.click(BOB, _button(message)) == 200
    process_inbox()
    assert deliver_outbox()["failed"] == 1
    assert "1 of 1 (<@U01BOB0001>)" not in _text(env.slack.messages[ts])  # not updated yet
    reconcile()
    assert "1 of 1 (<@U01BOB0001>)" in _text(env.slack.messages[ts])
    assert env.world.store.outbox_rows("failed") == []


def test_approvers_get_a_direct_message_once_when_the_gate_asks_for_it(env):
    _edit(env, "gates/problem-framed.yaml", "reminders:", "approval_dm: true\nreminders:")
    env.world.use_evidence("problem-framed.passed.json")
    _evaluate(env, "d-1")
    ts, _ = env.request()
    assert sorted(c["users"] for c in env.slack.of("conversations.open")) == [ALICE, BOB]
    dms = [m for m in env.slack.of("chat.postMessage") if m["channel"].startswith("D")]
    assert sorted(m["channel"] for m in dms) == ["D01ALICE01", "D01BOB0001"]
    link = f"{WORKSPACE}/archives/C0CHURN01/p{ts.replace('.', '')}"
    assert all(link in m["text"] and "waits for your decision" in m["text"] for m in dms)

    _, message = env.request()
    assert env.click(BOB, _button(message)) == 200  # the request is updated, no second DM
    process_inbox()
    deliver_outbox()
    reconcile()
    assert len([m for m in env.slack.of("chat.postMessage") if m["channel"].startswith("D")]) == 2


def test_a_reject_dialog_that_cannot_open_is_explained_to_the_person(env):
    env.world.use_evidence("problem-framed.passed.json")
    _evaluate(env, "d-1")
    _, message = env.request()
    env.slack.fail("views.open", error="expired_trigger_id")
    assert env.click(BOB, _button(message), action=blocks.REJECT) == 200
    [told] = wait_for(lambda: env.slack.of("chat.postEphemeral"))
    assert told["user"] == BOB and told["channel"] == "C0CHURN01"
    assert "could not open the dialog" in told["text"] and "click Reject again" in told["text"]


def test_interactions_without_an_id_of_their_own_are_not_taken_for_duplicates(env):
    def post(payload: dict) -> None:
        body = signing.slack_body(payload)
        answer = env.http.post("/slack/interactions", content=body, headers=signing.slack(body))
        assert answer.status_code == 200

    first = {"type": "shortcut", "user": {"id": BOB}, "callback_id": "one"}
    post(first)
    post({"type": "shortcut", "user": {"id": BOB}, "callback_id": "two"})
    post(first)  # a redelivery of the first
    ids = [e.delivery_id for e in env.world.store.inbox_events(source="slack")]
    assert len(ids) == 2 and len(set(ids)) == 2 and "slack-" not in ids
