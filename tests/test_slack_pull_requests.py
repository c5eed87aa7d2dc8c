"""Slack approvals of a gate that is checked per pull request, end to end: a fake GitHub with
the model PR (tests/github_world.py), a fake Slack, the real receiver taking signed clicks,
and the flows on a real Prefect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

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
from tests.fake_github import Repo
from tests.fake_slack import TOKEN, FakeSlack, click_payload, fake_slack, submission_payload
from tests.github_world import BRANCH, REPO, seed
from tests.servers import client, serving, wait_for
from tests.world import World

pytestmark = pytest.mark.usefixtures("prefect_harness")

ALICE, DAVE, BOB, FRANK = "U01ALICE01", "U01DAVE001", "U01BOB0001", "U01FRANK01"
GATE = "model-packaged"


@dataclass
class Pr:
    world: World
    slack: FakeSlack
    http: httpx.Client
    repo: Repo
    number: int
    head: str

    def event(self, delivery: str, kind: str = "pull_request.synchronize") -> None:
        self.world.store.add_inbox_event(
            source="github",
            delivery_id=delivery,
            kind=kind,
            payload={
                "action": kind.split(".")[1],
                "repository": {"full_name": REPO},
                "pull_request": {"number": self.number, "head": {"ref": BRANCH}},
            },
            received_at=datetime.now(UTC),
        )

    def post(self, payload: dict) -> int:
        body = signing.slack_body(payload)
        response = self.http.post("/slack/interactions", content=body, headers=signing.slack(body))
        return response.status_code

    def click(self, user: str, ts: str, action: str = blocks.APPROVE) -> int:
        message = self.slack.messages[ts]
        return self.post(click_payload(user, message, ts, action))

    def run(self) -> None:
        process_inbox()
        deliver_outbox()

    def check(self):
        [run] = [r for r in self.repo.check_runs_for(self.head) if r.name == f"phasegate / {GATE}"]
        return run

    def requests(self) -> list[str]:
        return [ts for ts, m in self.slack.messages.items() if _is_request(m)]

    def ephemerals(self) -> list[str]:
        return [a["text"] for a in self.slack.of("chat.postEphemeral")]


def _is_request(message: dict) -> bool:
    return any(b.get("type") == "header" for b in message.get("blocks", []))


def _text(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


@pytest.fixture
def pr(world, monkeypatch) -> Iterator[Pr]:
    fake, repo, number, head, private = seed(world)
    with serving(fake.app) as github, fake_slack() as (slack, url):
        monkeypatch.setenv("PHASEGATE_GITHUB_API_URL", f"{github}/api/v3")
        monkeypatch.setenv("PHASEGATE_GITHUB_APP_ID", "42")
        monkeypatch.setenv("PHASEGATE_GITHUB_PRIVATE_KEY", private)
        monkeypatch.setenv("PHASEGATE_SLACK_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("PHASEGATE_SLACK_API_URL", url)
        monkeypatch.setenv("PHASEGATE_SLACK_SIGNING_SECRET", signing.SLACK_SECRET)
        runtime.cache_clear()
        world.move_to("model-development")
        app = create_app(Settings(), world.store)
        with serving(app) as base, client(base) as http:
            yield Pr(world, slack, http, repo, number, head)
    runtime.cache_clear()


def _requested(pr: Pr) -> str:
    """The PR event posts one approval request; the PR's check waits for it."""
    pr.event("sync-1")
    pr.run()
    [ts] = pr.requests()
    assert pr.check().conclusion == "action_required"
    return ts


def test_approve_by_the_right_roles_advances_the_project_and_updates_the_check(pr):
    ts = _requested(pr)
    click = click_payload(ALICE, pr.slack.messages[ts], ts, blocks.APPROVE)
    value = json.loads(click["actions"][0]["value"])
    assert value["pull_request"] == pr.number  # the click says which PR it is about

    assert pr.click(ALICE, ts) == 200
    pr.run()
    updated = pr.slack.messages[ts]
    assert "alice" not in " ".join(pr.ephemerals())  # recorded, not refused
    assert "ds-lead*: 1 of 1" in _text(updated) and f"waiting for <@{DAVE}>" in _text(updated)
    assert pr.check().conclusion == "action_required"
    notices = [m["text"] for m in pr.slack.of("chat.postMessage")[1:]]
    assert not any("blocks" in n for n in notices), notices

    assert pr.click(DAVE, ts) == 200
    pr.run()
    assert pr.ephemerals() == []
    assert pr.check().conclusion == "success"
    assert pr.world.store.project("churn-model").phase == "deployment"
    final = pr.slack.messages[ts]  # the same message, updated in place
    assert pr.requests() == [ts]
    assert "Gate passed" in _text(final) and not any(
        b["type"] == "actions" for b in final["blocks"]
    )
    notices = [m["text"] for m in pr.slack.of("chat.postMessage")[1:]]
    assert any("advanced from *model-development* to *deployment*" in n for n in notices)


def test_a_project_wide_evaluation_does_not_make_the_pull_request_stale(pr):
    ts = _requested(pr)
    reconcile()  # evaluates the project itself: the default branch, not the PR
    assert pr.world.store.latest_evaluations("churn-model")[(GATE, None)].status == "blocked"
    assert not any("blocks" in m["text"] for m in pr.slack.of("chat.postMessage"))
    assert pr.click(ALICE, ts) == 200
    pr.run()
    assert pr.ephemerals() == []
    [approval] = pr.world.store.approvals("churn-model", GATE)
    assert approval.person == "alice"


def test_reject_with_a_reason_blocks_the_gate_and_says_why_everywhere(pr):
    ts = _requested(pr)
    assert pr.click(FRANK, ts, action=blocks.REJECT) == 200
    [opened] = wait_for(lambda: pr.slack.of("views.open"))
    assert pr.post(submission_payload(FRANK, opened["view"], "No rollback plan yet")) == 200
    pr.run()
    [rejection] = pr.world.store.approvals("churn-model", GATE)
    assert (rejection.person, rejection.decision) == ("frank", "reject")
    run = pr.check()
    assert run.conclusion == "failure"
    assert "No rollback plan yet" in run.output["summary"]
    assert "rejected by <@U01FRANK01>: No rollback plan yet" in _text(pr.slack.messages[ts])
    assert pr.world.store.project("churn-model").phase == "model-development"


def test_who_registered_the_model_version_may_not_approve_it(pr):
    evidence = pr.world.checkout / ".phasegate" / "evidence.json"
    data = json.loads(evidence.read_text())
    data["mlflow"]["version"]["user_id"] = "dave@example.com"  # dave registered it
    evidence.write_text(json.dumps(data))
    ts = _requested(pr)
    assert f"waiting for <@{FRANK}>" in _text(pr.slack.messages[ts])  # dave is not asked
    assert pr.click(DAVE, ts) == 200
    pr.run()
    [refusal] = pr.ephemerals()
    assert "You (dave) are an author of the work gate `model-packaged` checks" in refusal
    assert "registered the model version" in refusal and "Nothing was recorded" in refusal
    assert pr.world.store.approvals("churn-model", GATE) == []
    assert pr.check().conclusion == "action_required"
