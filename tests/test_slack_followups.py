"""Slack without Prefect: failures as retries or clear reports, reminders, the policy block."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient

from gates.evaluate import evaluate
from gates.loader import load_policies
from gates.scenario import load_scenario
from integrations.actions import Permanent, RetryLater
from integrations.slack.actions import ApprovalRequest
from integrations.slack.effects import REQUEST, request
from integrations.slack.reminders import follow_ups
from tests import test_store
from tests.fake_slack import TOKEN, fake_slack
from tests.paths import EXAMPLES

# the store tests' fixtures: SQLite, and PostgreSQL when PHASEGATE_TEST_POSTGRES_URL is set
store_url, new_store, store = test_store.store_url, test_store.new_store, test_store.store

OPENED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _result(policies):
    scenario = load_scenario(EXAMPLES / "problem-framed.passed.json")
    gate = policies.gates["problem-framed"]
    return evaluate(gate, scenario.evidence, [], [], OPENED, policies)


def test_slack_failures_are_retried_or_reported_clearly(default_policies, store):
    kind, key, payload = request(default_policies, _result(default_policies))
    assert kind == REQUEST and payload["post"]
    with fake_slack() as (slack, url):
        handler = ApprovalRequest(WebClient(token=TOKEN, base_url=url), store)
        slack.fail("chat.postMessage", status=429, retry_after=7)
        with pytest.raises(RetryLater) as limited:
            handler(key, payload, None)
        assert limited.value.after_s == 7
        slack.fail("chat.postMessage", status=503)
        with pytest.raises(RetryLater):
            handler(key, payload, None)
        slack.fail("chat.postMessage", error="not_in_channel")
        with pytest.raises(Permanent, match="invite"):
            handler(key, payload, None)
        with pytest.raises(Permanent, match="channel_not_found"):
            handler(key, {**payload, "channel": "#nowhere"}, None)
        made = handler(key, payload, None)  # Slack is back: posted once, then updated
        assert made == f"C0CHURN01:{next(iter(slack.messages))}"
        assert handler(key, payload, made) == made
        assert [c.method for c in slack.calls][-2:] == ["chat.postMessage", "chat.update"]


def test_reminder_then_escalation_then_expiry(default_policies, store):
    result = _result(default_policies)
    store.ensure_project("churn-model", "framing", OPENED)
    store.record_evaluation(
        project="churn-model",
        gate="problem-framed",
        status=result.status,
        mode=result.mode,
        policy_hash="p",
        evidence_digest=result.evidence_digest,
        gate_digest=result.gate_digest,
        result=result.model_dump(mode="json"),
        at=OPENED,
    )

    def due(after: timedelta) -> list:
        """The follow-ups due then, besides the request's current state (queued again so
        that one Slack refused is retried)."""
        current = request(default_policies, result)
        effects = list(follow_ups(default_policies, store, OPENED + after))
        assert current in effects or after >= timedelta(days=7)
        return [e for e in effects if e != current]

    assert due(timedelta(hours=23)) == []
    [remind] = due(timedelta(hours=25))
    assert remind[1].startswith("slack.message:remind:") and "U01BOB0001" in str(remind[2])
    assert remind[2]["thread_of"].startswith("slack.request:churn-model:problem-framed:")
    [escalate] = due(timedelta(hours=73))
    assert "Escalated to ds-lead" in escalate[2]["text"]
    [expire] = due(timedelta(days=8))
    assert expire[0] == REQUEST and not expire[2]["post"]
    assert "expired" in str(expire[2]["blocks"]) and "actions" not in str(expire[2]["blocks"])


def test_reminders_are_validated_like_the_rest_of_the_policy(policy_copy):
    gate = policy_copy / "gates" / "problem-framed.yaml"
    text = gate.read_text().replace("escalate_to: [ds-lead]", "escalate_to: [ds-led]")
    gate.write_text(text.replace("expire_after: 7d", "expire_after: 2d"))
    errors = [str(e) for e in load_policies(policy_copy).errors]
    assert any("expire_after must be longer than escalate_after" in e for e in errors), errors
    gate.write_text(text)
    errors = [str(e) for e in load_policies(policy_copy).errors]
    assert any("problem-framed.yaml" in e and "ds-led" in e for e in errors), errors


def test_a_pull_requests_standing_is_its_own_and_a_failed_message_can_be_reopened(store):
    store.ensure_project("churn-model", "framing", OPENED)

    def evaluated(status: str, pull: int | None, minutes: int) -> None:
        store.record_evaluation(
            project="churn-model",
            gate="model-packaged",
            status=status,
            mode="enforce",
            policy_hash="p",
            evidence_digest=f"e-{pull}",
            gate_digest=f"g-{pull}",
            result={},
            at=OPENED + timedelta(minutes=minutes),
            pull_request=pull,
        )

    evaluated("awaiting_approval", 13, 0)
    evaluated("blocked", None, 5)  # the project itself, later: the PR's standing stays
    latest = store.latest_evaluations("churn-model")
    assert latest[("model-packaged", 13)].status == "awaiting_approval"
    assert latest[("model-packaged", None)].status == "blocked"
    assert store.last_evaluations("churn-model")["model-packaged"].status == "blocked"

    prefix = "slack.request:churn-model:model-packaged:#13:g-13:"
    first, _ = store.enqueue_outbox(idempotency_key=prefix + "a", kind=REQUEST, payload={"n": 1})
    [claimed] = store.claim_outbox(10)
    store.finish_outbox(claimed.id, "failed", error="not_in_channel")
    assert store.enqueue_outbox(idempotency_key=prefix + "a", kind=REQUEST, payload={})[1] is False
    assert [r.last_error for r in store.outbox_rows("failed")] == ["not_in_channel"]
    again, reopened = store.enqueue_outbox(
        idempotency_key=prefix + "a", kind=REQUEST, payload={}, reopen_failed=True
    )
    assert reopened and again.id == first.id and again.status == "pending"
    assert store.outbox_rows("failed") == []
    store.enqueue_outbox(idempotency_key=prefix + "b", kind=REQUEST, payload={"n": 2})
    assert store.latest_outbox(prefix).payload == {"n": 2}
    assert store.latest_outbox("slack.request:churn-model:model-packaged:g-") is None
