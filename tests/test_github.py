"""GitHub end to end: signed webhooks in, gate checks out, against a fake GitHub that speaks
GitHub's REST wire format (tests/fake_github.py) and PyGithub pointed at it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.runtime import runtime
from tests.github_world import BRANCH, REPO, connected, pr_event

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
    pr_event(world, "sync-1", number)
    assert process_inbox()["decisions"] == 1
    deliver_outbox()
    [run] = _gate_runs(repo, head)
    assert run.conclusion == "action_required"  # every check passes; approvals are missing
    assert "Model packaged: awaiting approval" in run.output["summary"]
    assert "| ✓ | Tests and CI are green |" in run.output["summary"]
    assert "still needed: 1, from alice" in run.output["summary"]

    evaluation = world.store.evaluations("churn-model", "model-packaged")[0]
    for person in ("alice", "dave"):
        world.store.add_approval(
            project="churn-model",
            gate="model-packaged",
            person=person,
            decision="approve",
            digest=evaluation.gate_digest,
            reason=None,
            source="test",
            at=datetime.now(UTC),
        )
    pr_event(world, "rerun-1", number, kind="check_run.rerequested")
    process_inbox()
    deliver_outbox()
    [run] = _gate_runs(repo, head)  # the same check run, updated
    assert run.conclusion == "success"
    assert world.store.project("churn-model").phase == "deployment"
    assert "phase: deployment" in repo.issues[1].labels  # the tracking issue shows the phase
    assert fake.count("checks/create") == 1 and fake.count("checks/update") == 1
    assert repo.comments(number) == []  # PR comments are off unless asked for


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
    [row] = world.store.pending_outbox()
    world.store.finish_outbox(row.id, "pending")  # due now
    assert deliver_outbox()["retry"] == 1
    [row] = world.store.pending_outbox()
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

    loosened = text.replace(
        "  - {id: ml-engineer, roles: [ml-engineer], count: 1, allow_author: false, expires_after: 14d}\n",
        "",
    )
    fix = repo.push("policy/typo", {path: loosened})
    pr_event(world, "policy-2", pull.number)
    process_inbox()
    deliver_outbox()
    [run] = [r for r in repo.check_runs_for(fix) if r.name == "phasegate / policy"]
    assert run.conclusion == "success"
    assert (
        "valid; 0 project(s) would decide differently" in run.output["title"]
        or "churn-model" in run.output["summary"]
    )
