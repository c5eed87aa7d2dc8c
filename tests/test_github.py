"""GitHub end to end: signed webhooks in, gate checks out, against a fake GitHub that speaks
GitHub's REST wire format (tests/fake_github.py) and PyGithub pointed at it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.runtime import runtime
from gates.loader import load_or_raise
from integrations.receiver import create_app
from phasegate.settings import Settings
from tests import signing
from tests.github_world import (
    APP_ID,
    BRANCH,
    REPO,
    check_run_event,
    check_suite_event,
    connected,
    deliver,
    pr_event,
    published,
    pull_request_event,
    push_event,
    review_event,
)
from tests.servers import client, serving

ACTIONS_APP = 15368  # GitHub Actions, whose CI runs the fake holds
ML_ENGINEER_RULE = (
    "  - {id: ml-engineer, roles: [ml-engineer], count: 1, allow_author: false, "
    "expires_after: 14d}\n"
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def github(world, monkeypatch):
    """A fake GitHub holding the example project's repository, issues and a model PR."""
    with connected(world, monkeypatch) as seeded:
        yield seeded


def _gate_runs(repo, head):
    return [r for r in repo.check_runs_for(head) if r.name == "phasegate / model-packaged"]


def test_pull_request_gets_its_gate_check_updated_in_place(world, github):
    fake, repo, number, head = github
    deliver(world, "pull_request", pull_request_event(repo, number), "sync-1")
    assert process_inbox()["decisions"] == 1
    deliver_outbox()
    [run] = _gate_runs(repo, head)
    assert run.conclusion == "action_required"  # every check passes; approvals are missing
    assert "Model packaged: awaiting approval" in run.output["summary"]
    assert "| ✓ | Tests and CI are green |" in run.output["summary"]
    assert "still needed: 1, from alice" in run.output["summary"]

    # "Re-run" with nothing changed: GitHub sends check_run.rerequested, naming no PR (as for
    # a fork's); phasegate finds the PR by the head commit and posts the check again.
    rerun = check_run_event(repo, head, "phasegate / model-packaged", "rerequested", APP_ID)
    deliver(world, "check_run", rerun, "rerun-1")
    assert process_inbox()["decisions"] == 1
    assert deliver_outbox()["done"] >= 1
    [run] = _gate_runs(repo, head)  # the same check run, updated
    assert run.conclusion == "action_required"
    assert fake.count("checks/create") == 1 and fake.count("checks/update") == 1
    assert repo.comments(number) == []  # PR comments are off unless asked for
    deliver(world, "check_run", rerun, "rerun-1")  # a redelivery of that press: nothing
    process_inbox()
    deliver_outbox()
    assert fake.count("checks/update") == 1

    world.approve("model-packaged", "alice", "dave")
    # CI's suite completes; GitHub names no PR for it either.
    deliver(world, "check_suite", check_suite_event(repo, head, ACTIONS_APP), "suite-1")
    process_inbox()
    deliver_outbox()
    [run] = _gate_runs(repo, head)
    assert run.conclusion == "success"
    assert world.store.project("churn-model").phase == "deployment"
    assert "phase: deployment" in repo.issues[1].labels  # the tracking issue shows the phase
    assert fake.count("checks/create") == 1 and fake.count("checks/update") == 2


def test_a_failing_check_is_explained_and_annotated(world, github):
    _fake, repo, number, _ = github
    card = "# Model card\n\n## Model details\nGBT.\n\n## Intended use\n\n## Training data\nx\n"
    head = repo.push(BRANCH, {"docs/model_card.md": card})
    pr_event(world, "sync-2", number)
    process_inbox()
    deliver_outbox()
    [run] = _gate_runs(repo, head)
    assert run.conclusion == "failure"
    summary = run.output["summary"]
    assert (
        "'Intended use' is empty" in summary
        and "Fill in every section of docs/model_card.md." in summary
    )
    [note] = [a for a in run.annotations if a["path"] == "docs/model_card.md"]
    assert note["start_line"] == 6 and "Intended use" in note["message"]


def test_duplicate_delivery_costs_no_github_request(world, github):
    fake, _, number, _ = github
    pr_event(world, "sync-3", number)
    process_inbox()
    before = len(fake.requests)
    pr_event(world, "sync-3", number)  # redelivered: the inbox already has it
    process_inbox()
    assert len(fake.requests) == before


def test_token_without_app_posts_a_commit_status(world, github, monkeypatch):
    fake, repo, number, head = github
    fake.add_user_token("ghp_test", login="phasegate-bot")
    monkeypatch.delenv("PHASEGATE_GITHUB_APP_ID")
    monkeypatch.setenv("PHASEGATE_GITHUB_TOKEN", "ghp_test")
    runtime.cache_clear()
    pr_event(world, "sync-4", number)
    process_inbox()
    deliver_outbox()
    statuses = [s for s in repo.statuses_for(head) if s.context == "phasegate / model-packaged"]
    assert [s.state for s in statuses] == ["pending"]  # awaiting approval shows as pending
    assert _gate_runs(repo, head) == []


def test_github_outage_and_rate_limits_are_retried_not_lost(world, github):
    fake, repo, number, head = github
    fake.fail("checks/create", times=1, status=502)  # writes are retried by the outbox, later
    pr_event(world, "sync-5", number)
    process_inbox()
    first = deliver_outbox()
    assert first["retry"] == 1 and _gate_runs(repo, head) == []
    fake.secondary_rate_limit("checks/create", times=1, retry_after=120)
    [row] = world.store.outbox_rows("pending")
    world.store.finish_outbox(row.id, "pending")  # due now
    assert deliver_outbox()["retry"] == 1
    [row] = world.store.outbox_rows("pending")
    assert row.not_before and (row.not_before - datetime.now(UTC)).total_seconds() > 100
    world.store.finish_outbox(row.id, "pending")
    assert deliver_outbox()["done"] == 1
    assert len(_gate_runs(repo, head)) == 1


def test_policy_pull_request_is_validated_with_annotations(world, github, monkeypatch):
    _fake, repo, _, _ = github
    monkeypatch.setenv("PHASEGATE_GITHUB_POLICY_REPO", REPO)
    runtime.cache_clear()
    path = "policies/gates/model-packaged.yaml"
    text = repo.commits[repo.branches["main"]].files[path].decode()
    broken = text.replace("kind: ci_green", "kind: ci_greeen")
    pull = repo.add_pull("policy/typo", files={path: broken}, user="alice-ds")
    head = repo.branches["policy/typo"]
    pr_event(world, "policy-1", pull.number, kind="pull_request.opened")
    process_inbox()
    deliver_outbox()
    [run] = [r for r in repo.check_runs_for(head) if r.name == "phasegate / policy"]
    assert run.conclusion == "failure"
    [note] = run.annotations
    line = broken.splitlines().index("    kind: ci_greeen") + 1
    assert (note["path"], note["start_line"]) == (path, line)
    assert "unknown check kind 'ci_greeen' (did you mean 'ci_green'?)" in note["message"]

    loosened = text.replace(ML_ENGINEER_RULE, "")
    fraud = "kind: Project\nkey: fraud-model\ngithub: {repo: acme/fraud-model}\n"
    fix = repo.push("policy/typo", {path: loosened, "policies/projects/fraud.yaml": fraud})
    pr_event(world, "policy-2", pull.number)
    process_inbox()
    deliver_outbox()
    [run] = [r for r in repo.check_runs_for(fix) if r.name == "phasegate / policy"]
    assert run.conclusion == "success"
    assert run.output["title"] == "valid; 2 project(s) would decide differently"
    # Dropping an approval rule changes who must sign off, though the status stays blocked.
    assert (
        "| churn-model | model-packaged | blocked | blocked | "
        "approval no longer required: ml-engineer |" in run.output["summary"]
    )
    assert "| fraud-model | problem-framed | not gated |" in run.output["summary"]
    assert world.store.project("fraud-model") is None  # a proposal writes no project rows


def test_deliveries_that_cannot_change_a_decision_cost_no_github_request(world, github):
    fake, repo, _number, head = github
    ping = published("ping/payload.json")
    ping["repository"]["full_name"] = REPO
    tag = published("push/payload.json")
    tag["repository"]["full_name"] = REPO
    comment = published("issue_comment/created.payload.json")
    comment["repository"]["full_name"] = REPO
    noise = [
        ("ping", ping),
        ("push", push_event(repo, BRANCH, head, ["src/train.py"])),
        ("push", tag),
        ("check_run", check_run_event(repo, head, "phasegate / model-packaged", "completed", 42)),
        ("issue_comment", comment),
        ("deployment_status", {"action": "created", "repository": {"full_name": REPO}}),
    ]
    for n, (event, body) in enumerate(noise):
        deliver(world, event, body, f"noise-{n}")
    before = len(fake.requests)
    totals = process_inbox()
    assert (totals["ignored"], totals.get("decisions", 0)) == (len(noise), 0)
    assert len(fake.requests) == before
    reasons = [row.error for row in world.store.inbox_events(status="ignored")]
    assert reasons[0] == "ping (webhook configured)"
    assert reasons[1].startswith(f"push to {BRANCH}, not the default branch main")
    assert reasons[3] == (
        "phasegate's own check run 'phasegate / model-packaged' (completed) is not evidence"
    )
    assert reasons[5] == "phasegate does not act on GitHub 'deployment_status' events"


def test_a_review_on_github_is_evidence_and_its_event_re_evaluates(world, github):
    _fake, repo, number, head = github
    gate = world.root / "policies" / "gates" / "model-packaged.yaml"
    reviewed = (
        "  - id: reviewed\n"
        "    title: A reviewer approved the PR on GitHub\n"
        '    expr: github.pull_request.reviews.exists(r, r.state == "APPROVED")\n'
    )
    gate.write_text(gate.read_text().replace("approvals:\n", reviewed + "approvals:\n", 1))
    deliver(world, "pull_request", pull_request_event(repo, number), "sync-r")
    process_inbox()
    deliver_outbox()
    [run] = _gate_runs(repo, head)
    assert "| ✗ | A reviewer approved the PR on GitHub |" in run.output["summary"]
    repo.add_review(number, "dave-ml", "APPROVED")
    review = review_event(repo, number, "dave-ml", "APPROVED")
    deliver(world, "pull_request_review", review, "review-1")
    assert process_inbox()["decisions"] == 1
    deliver_outbox()
    [run] = _gate_runs(repo, head)
    assert "| ✓ | A reviewer approved the PR on GitHub |" in run.output["summary"]


def test_a_signed_published_payload_through_the_receiver_gets_its_check(world, github, monkeypatch):
    fake, repo, number, head = github
    monkeypatch.setenv("PHASEGATE_GITHUB_WEBHOOK_SECRET", signing.GITHUB_SECRET)
    body = json.dumps(pull_request_event(repo, number, "opened")).encode()
    with serving(create_app(Settings(), world.store)) as base, client(base) as http:
        headers = signing.github(body, "pull_request", "e2e-opened")
        answer = http.post("/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        refused = http.post(
            "/webhooks/github",
            content=body,
            headers=signing.github(body, "pull_request", "e2e-forged", secret="not-it"),
        )
        assert refused.status_code == 401
    assert process_inbox()["decisions"] == 1
    deliver_outbox()
    [run] = _gate_runs(repo, head)
    assert run.conclusion == "action_required"
    summary = run.output["summary"]
    assert "Model packaged: awaiting approval" in summary
    assert "| ✓ | Model was trained from the PR's head commit |" in summary
    assert "| ✓ | Model card is written |" in summary
    assert "still needed: 1, from alice" in summary
    # What the signed payload says (the repository, the PR's head, labels, author) was not
    # asked of GitHub again.
    assert fake.count("repos/get") == 0 and fake.count("pulls/get") == 0


def test_a_policy_push_to_the_default_branch_changes_the_policies_in_force(
    world, github, monkeypatch
):
    _fake, repo, _number, _head = github
    monkeypatch.setenv("PHASEGATE_GITHUB_POLICY_REPO", REPO)
    runtime.cache_clear()
    path = "policies/gates/model-packaged.yaml"
    installed = world.root / "policies" / "gates" / "model-packaged.yaml"
    text = repo.commits[repo.branches["main"]].files[path].decode()
    loosened = text.replace(ML_ENGINEER_RULE, "")
    before = repo.branches["main"]
    repo.push("main", {path: loosened})
    deliver(world, "push", push_event(repo, "main", before, [path]), "push-1")
    process_inbox()
    assert installed.read_text() == loosened
    [row] = world.store.inbox_events(status="done")
    assert row.error.startswith(f"policies of {REPO}@{repo.branches['main'][:12]} installed")
    in_force = load_or_raise(world.root / "policies")
    assert runtime().policies.current.policy_hash == in_force.policy_hash
    # Every project was re-evaluated under them: no ml-engineer approval is asked for.
    [evaluation] = world.store.evaluations("churn-model", "model-packaged")
    assert evaluation.policy_hash == in_force.policy_hash
    assert [r["rule"] for r in evaluation.result["approvals"]] == ["ds-lead"]

    broken = loosened.replace("kind: ci_green", "kind: ci_greeen")
    before = repo.branches["main"]
    repo.push("main", {path: broken})
    deliver(world, "push", push_event(repo, "main", before, [path]), "push-2")
    process_inbox()
    line = broken.splitlines().index("    kind: ci_greeen") + 1
    row = world.store.inbox_events(status="done")[-1]
    assert row.delivery_id == "push-2"
    assert f"{path}:{line}:" in row.error
    assert "unknown check kind 'ci_greeen' (did you mean 'ci_green'?)" in row.error
    assert "are invalid; the policy set in force stays" in row.error
    assert installed.read_text() == loosened  # the last valid set stays
    assert runtime().policies.current.policy_hash == in_force.policy_hash

    other = repo.branches["main"]
    repo.push("main", {"README.md": "not a policy\n"})  # touches no policy: nothing fetched
    deliver(world, "push", push_event(repo, "main", other, ["README.md"]), "push-3")
    process_inbox()
    assert world.store.inbox_events(status="done")[-1].error is None
