"""What phasegate writes to GitHub, against the fake GitHub (real HTTP, GitHub's OpenAPI
request schemas): check runs and their annotations and summaries, rate limits and refused
tokens, labels beyond GitHub's first page, decision comments, the phase label after a
regression, links to the status page, and the templates command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from flows.deliver_outbox import deliver_outbox
from flows.process_inbox import process_inbox
from flows.runtime import runtime
from gates.render import GITHUB_SUMMARY_LIMIT
from integrations.github import effects as github_effects
from tests import signing
from tests.fake_github import FakeGitHub
from tests.github_world import BRANCH, REPO, connected, pr_event
from tests.paths import ROOT
from tests.servers import serving

pytestmark = pytest.mark.usefixtures("prefect_harness")

GATE_CHECK = "phasegate / model-packaged"
BROKEN_CARD = "# Model card\n\n## Model details\nGBT.\n\n## Intended use\n\n## Training data\nx\n"


@pytest.fixture
def github(world, monkeypatch):
    with connected(world, monkeypatch) as seeded:
        yield seeded


def _runs(repo, head, name=GATE_CHECK):
    """The check runs of ``name`` on ``head``, oldest first; GitHub shows the last."""
    return sorted((r for r in repo.check_runs_for(head) if r.name == name), key=lambda r: r.id)


def _queue_check(world, head, digest, status, annotations, summary="summary", conclusion=None):
    """A gate check as flows/decisions.py queues it (the outbox row is the contract)."""
    world.store.enqueue_outbox(
        idempotency_key=f"check:{REPO}:{head}:model-packaged:{digest}:{status}",
        kind=github_effects.CHECK,
        payload={
            "repo": REPO,
            "head_sha": head,
            "name": GATE_CHECK,
            "conclusion": conclusion or "failure",
            "title": f"Model packaged: {status}",
            "summary": summary,
            "annotations": annotations,
        },
    )


def _marks(count):
    """``count`` failure annotations, one a line of the model card."""
    return [
        {
            "path": "docs/model_card.md",
            "start_line": line,
            "end_line": line,
            "annotation_level": "failure",
            "title": f"section {line} is empty",
            "message": "expected filled; found empty",
        }
        for line in range(1, count + 1)
    ]


def _queue_label(world, phase, at):
    """The tracking issue's phase label as flows/decisions.py queues it after a move."""
    world.store.enqueue_outbox(
        idempotency_key=f"label:churn-model:{phase}:{at}",
        kind=github_effects.PHASE_LABEL,
        payload={"repo": REPO, "issue": 1, "phase": phase, "phases": [phase]},
    )


def _due_now(world):
    """Every row waiting for a retry is due at once (instead of after its backoff)."""
    for row in world.store.outbox_rows("pending"):
        world.store.finish_outbox(row.id, "pending")


def _latest_result(world):
    return world.store.evaluations("churn-model", "model-packaged")[0]


# --- annotations and summaries ---------------------------------------------------------------


def test_changed_annotations_make_a_new_check_run_instead_of_piling_up(world, github):
    fake, repo, _, head = github
    marks = _marks(60)
    _queue_check(world, head, "digest-1", "blocked", marks)
    deliver_outbox()
    [run] = _runs(repo, head)
    assert len(run.annotations) == 60  # 50 with the create, 10 with an update

    _queue_check(world, head, "digest-2", "blocked", marks, summary="same marks, new words")
    deliver_outbox()
    [run] = _runs(repo, head)  # the same marks: updated in place, none added
    assert len(run.annotations) == 60 and run.output["summary"] == "same marks, new words"

    _queue_check(world, head, "digest-3", "passed", [], conclusion="success")
    assert deliver_outbox()["done"] == 1
    old, shown = _runs(repo, head)
    assert shown.conclusion == "success" and shown.annotations == []  # no stale failure marks
    assert len(old.annotations) == 60
    writes = fake.calls("checks/create") + fake.calls("checks/update")
    assert all(len(c.body.get("output", {}).get("annotations", [])) <= 50 for c in writes)


def test_a_summary_is_cut_by_bytes_and_says_what_was_left_out(world, github):
    _fake, repo, number, head = github
    gate = world.root / "policies" / "gates" / "model-packaged.yaml"
    ticks = "".join(
        f'  - {{id: tick-{i}, title: "{"✓" * 20} {i}", expr: "true"}}\n' for i in range(1500)
    )
    gate.write_text(gate.read_text().replace("approvals:\n", ticks + "approvals:\n", 1))
    pr_event(world, "big-1", number)
    process_inbox()
    assert deliver_outbox() == {"done": 2, "retry": 0, "failed": 0}  # the check and the log
    [run] = _runs(repo, head)
    summary = run.output["summary"]
    assert 60_000 < len(summary.encode()) <= GITHUB_SUMMARY_LIMIT  # bytes: ✓ is three
    last = summary.splitlines()[-1]
    assert "more line(s)" in last and "/status/churn-model" in last


def test_a_policy_pull_request_with_thousands_of_errors_still_gets_its_check(
    world, github, monkeypatch
):
    _fake, repo, _, _ = github
    monkeypatch.setenv("PHASEGATE_GITHUB_POLICY_REPO", REPO)
    runtime.cache_clear()
    broken = "".join(f"  - {{id: c{i}, title: check {i}, kind: ci_greeen}}\n" for i in range(2000))
    path = "policies/gates/broken.yaml"
    text = f"kind: Gate\nid: broken\ntitle: Broken\nchecks:\n{broken}"
    pull = repo.add_pull("policy/broken", files={path: text}, user="alice-ds")
    pr_event(world, "policy-big", pull.number, kind="pull_request.opened")
    process_inbox()
    assert deliver_outbox()["failed"] == 0
    [run] = [r for r in repo.check_runs_for(repo.branches["policy/broken"])]
    assert run.name == "phasegate / policy" and run.conclusion == "failure"
    summary = run.output["summary"]
    assert len(summary.encode()) <= GITHUB_SUMMARY_LIMIT
    assert "more line(s)" in summary.splitlines()[-1]
    assert "phasegate validate" in summary.splitlines()[-1]
    assert len(run.annotations) == 2000  # every error at its line, 50 per request


# --- states delivered out of order, retries that made part of a check -----------------------


@pytest.mark.parametrize("marks", [0, 3], ids=["same-annotations", "other-annotations"])
def test_an_older_check_state_held_back_does_not_overwrite_a_newer_one(world, github, marks):
    fake, repo, _, head = github
    fake.secondary_rate_limit("checks/create", times=1, retry_after=60)
    _queue_check(world, head, "digest-1", "blocked", _marks(marks))
    assert deliver_outbox()["retry"] == 1  # the blocked state waits a minute
    _queue_check(world, head, "digest-2", "passed", [], conclusion="success")
    assert deliver_outbox()["done"] == 1  # the passed state arrives first
    _due_now(world)
    assert deliver_outbox()["done"] == 1  # the blocked state writes nothing now
    [run] = _runs(repo, head)
    assert run.conclusion == "success" and run.annotations == []
    assert fake.count("checks/update") == 0


def test_an_older_check_state_due_first_sends_the_newest_state(world, github):
    fake, repo, _, head = github
    fake.secondary_rate_limit("checks/create", times=2, retry_after=60)
    _queue_check(world, head, "digest-1", "blocked", _marks(3))
    _queue_check(world, head, "digest-2", "passed", [], conclusion="success")
    assert deliver_outbox()["retry"] == 2
    [older, newer] = world.store.outbox_rows("pending")
    world.store.finish_outbox(older.id, "pending")  # only the older one is due
    assert deliver_outbox()["done"] == 1
    [run] = _runs(repo, head)  # it shows the newer state at once ...
    assert run.conclusion == "success" and run.annotations == []
    world.store.finish_outbox(newer.id, "pending")
    assert deliver_outbox()["done"] == 1
    [run] = _runs(repo, head)  # ... which then updates that run instead of making another
    assert run.conclusion == "success"


def test_an_older_phase_label_held_back_does_not_set_an_old_phase(world, github):
    fake, repo, _, _ = github
    tracking = repo.issues[1]
    repo.set_labels(tracking, ["phase: model-development"])
    fake.secondary_rate_limit("issues/list-labels-on-issue", times=1, retry_after=60)
    _queue_label(world, "deployment", "2026-11-20T10:00:00+00:00")
    assert deliver_outbox()["retry"] == 1
    _queue_label(world, "operation", "2026-11-20T10:05:00+00:00")
    assert deliver_outbox()["done"] == 1
    _due_now(world)
    assert deliver_outbox()["done"] == 1
    assert [n for n in tracking.labels if n.startswith("phase: ")] == ["phase: operation"]


@pytest.mark.parametrize("earlier_run", [False, True], ids=["first-run", "after-another-run"])
def test_annotations_after_a_refused_page_are_sent_on_the_retry(world, github, earlier_run):
    fake, repo, _, head = github
    if earlier_run:
        _queue_check(world, head, "digest-0", "blocked", _marks(3))
        assert deliver_outbox()["done"] == 1
    marks = _marks(150)  # the create carries 50, two updates 50 each
    fake.fail("checks/update", times=1, status=502, after=1)  # the second update
    _queue_check(world, head, "digest-1", "blocked", marks)
    assert deliver_outbox()["retry"] == 1
    _due_now(world)
    assert deliver_outbox()["done"] == 1
    *older, run = _runs(repo, head)
    assert len(older) == int(earlier_run)  # no second run for the same state
    assert run.annotations == marks  # every one once, in order


def test_a_check_run_github_made_without_answering_is_finished_on_the_retry(world, github):
    fake, repo, _, head = github
    fake.fail("checks/create", times=1, status=502, applied=True)
    marks = _marks(60)
    _queue_check(world, head, "digest-1", "blocked", marks)
    assert deliver_outbox()["retry"] == 1
    _due_now(world)
    assert deliver_outbox()["done"] == 1
    [run] = _runs(repo, head)
    assert run.annotations == marks


def test_a_policy_pull_request_github_lists_only_in_part_is_not_judged_on_a_part(
    world, github, monkeypatch
):
    fake, repo, _, _ = github
    monkeypatch.setenv("PHASEGATE_GITHUB_POLICY_REPO", REPO)
    runtime.cache_clear()
    path = "policies/gates/model-packaged.yaml"
    text = repo.commits[repo.branches["main"]].files[path].decode()
    pull = repo.add_pull("policy/retitle", files={path: text.replace("Model packaged", "M")})
    fake.tree_limit = 5  # a repository with more files than GitHub lists in one tree
    pr_event(world, "policy-cut", pull.number, kind="pull_request.opened")
    process_inbox()
    assert deliver_outbox()["failed"] == 0
    [run] = repo.check_runs_for(repo.branches["policy/retitle"])
    assert run.name == "phasegate / policy" and run.conclusion == "failure"
    assert "only in part (its tree is truncated" in run.output["summary"]


# --- rate limits, outages and refused tokens -----------------------------------------------


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_without_retry_after_is_retried_a_minute_later(
    world, github, status
):
    fake, repo, number, head = github
    fake.secondary_rate_limit("checks/create", times=1, retry_after=None, status=status)
    pr_event(world, f"limited-{status}", number)
    process_inbox()
    assert deliver_outbox()["retry"] == 1
    [row] = world.store.outbox_rows("pending")
    wait = (row.not_before - datetime.now(UTC)).total_seconds()
    assert 50 < wait <= 60 and "secondary rate limit" in row.last_error
    world.store.finish_outbox(row.id, "pending")  # due now
    assert deliver_outbox()["done"] == 1
    assert len(_runs(repo, head)) == 1


def test_a_long_rate_limit_wait_on_a_read_is_not_sat_out(world, github):
    fake, _, _, _ = github
    fake.secondary_rate_limit("repos/get", times=5, retry_after=120, method="GET")
    world.event("slow-read", "issues.edited")
    process_inbox()  # the read gave up at once instead of holding the worker for 120 s
    evaluation = _latest_result(world)
    assert evaluation.status == "error"  # the reconcile flow evaluates again later
    assert "asks for a wait of 120 s" in json.dumps(evaluation.result)


def test_a_revoked_installation_token_is_replaced_for_reads_and_writes(world, github):
    fake, repo, number, head = github
    pr_event(world, "token-1", number)
    process_inbox()
    deliver_outbox()
    fake.expire_tokens()
    world.approve("model-packaged", "alice", "dave")
    pr_event(world, "token-2", number, kind="check_run.rerequested")
    process_inbox()
    assert _latest_result(world).status == "passed"  # the reads asked for a new token
    fake.expire_tokens()
    assert deliver_outbox()["failed"] == 0  # and so did the writes
    assert _runs(repo, head)[-1].conclusion == "success"
    assert fake.count("apps/create-installation-access-token") == 3


def test_a_passing_outage_while_finding_the_installation_is_retried(world, github):
    fake, _, number, _ = github
    fake.fail("apps/get-repo-installation", times=1, status=502)
    pr_event(world, "setup-502", number)
    process_inbox()
    assert _latest_result(world).status == "awaiting_approval"


# --- labels, comments, regressions, links --------------------------------------------------


def test_the_phase_label_is_found_among_more_labels_than_a_page_holds(world, github):
    _, repo, number, _ = github
    tracking = repo.issues[1]
    repo.set_labels(tracking, [f"topic-{i}" for i in range(34)] + ["phase: model-development"])
    pr_event(world, "labels-1", number)
    process_inbox()
    world.approve("model-packaged", "alice", "dave")
    pr_event(world, "labels-2", number, kind="check_run.rerequested")
    process_inbox()
    deliver_outbox()
    assert world.store.project("churn-model").phase == "deployment"
    assert "phase: deployment" in tracking.labels
    assert "phase: model-development" not in tracking.labels  # the 35th label, on page 2
    assert len(tracking.labels) == 36


def test_a_phase_label_taken_off_by_hand_meanwhile_does_not_stop_the_new_one(world, github):
    fake, repo, _, _ = github
    tracking = repo.issues[1]
    repo.set_labels(tracking, ["phase: model-development"])
    # Someone removes it between phasegate's read of the labels and its DELETE.
    fake.fail("issues/remove-label", times=1, status=404, message="Label does not exist")
    _queue_label(world, "deployment", "2026-11-20T10:00:00+00:00")
    assert deliver_outbox() == {"done": 1, "retry": 0, "failed": 0}
    assert "phase: deployment" in tracking.labels


def test_a_pull_request_is_told_when_its_decision_changes(world, github, monkeypatch):
    fake, repo, number, _ = github
    monkeypatch.setenv("PHASEGATE_GITHUB_PR_COMMENTS", "true")
    runtime.cache_clear()
    pr_event(world, "comment-1", number)
    process_inbox()
    deliver_outbox()
    assert fake.count("issues/list-comments") == 0  # a first attempt cannot have posted
    [first] = repo.comments(number)
    assert first.body.startswith("**phasegate / model-packaged** (Model packaged): ⏳ awaiting")
    assert f"/pull/{number}/checks)" in first.body  # a link to the check

    pr_event(world, "comment-2", number, kind="check_run.rerequested")
    process_inbox()
    deliver_outbox()
    assert len(repo.comments(number)) == 1  # the same decision again: nothing to say

    world.approve("model-packaged", "alice", "dave")
    pr_event(world, "comment-3", number, kind="check_run.rerequested")
    process_inbox()
    deliver_outbox()
    first, second = repo.comments(number)
    assert "✅ passed (was awaiting approval)" in second.body
    assert "passed:" in second.body  # the engine's summary


def test_a_comment_github_posted_without_answering_is_not_posted_twice(world, github, monkeypatch):
    fake, repo, number, _ = github
    monkeypatch.setenv("PHASEGATE_GITHUB_PR_COMMENTS", "true")
    runtime.cache_clear()
    fake.fail("issues/create-comment", times=1, status=502, applied=True)
    pr_event(world, "comment-lost", number)
    process_inbox()
    assert deliver_outbox()["retry"] == 1
    _due_now(world)
    assert deliver_outbox()["done"] == 1
    assert len(repo.comments(number)) == 1  # found by its marker on the retry
    assert fake.count("issues/list-comments") == 1


def test_a_regression_moves_the_tracking_issue_label_back(world, github):
    _, repo, _, _ = github
    now = datetime.now(UTC)
    world.move_to("operation")
    tracking = repo.issues[1]
    repo.set_labels(tracking, ["phase: operation"])
    alert = signing.alertmanager(labels={"project": "churn-model"})
    world.store.add_inbox_event(
        source="monitoring",
        delivery_id="drift-1",
        kind="alert.firing",
        payload=alert,
        received_at=now,
    )
    process_inbox()
    deliver_outbox()
    assert world.store.project("churn-model").phase == "model-development"
    assert "phase: model-development" in tracking.labels
    assert "phase: operation" not in tracking.labels


def test_the_check_run_links_to_the_status_page(world, github, monkeypatch):
    _, repo, number, head = github
    monkeypatch.setenv("PHASEGATE_PUBLIC_URL", "https://phasegate.example.org/")
    runtime.cache_clear()
    pr_event(world, "details-1", number)
    process_inbox()
    deliver_outbox()
    [run] = _runs(repo, head)
    assert run.details_url == (
        f"https://phasegate.example.org/status/churn-model?pr={number}#model-packaged"
    )


def test_annotations_in_a_monorepo_carry_the_project_folder(world, github):
    _, repo, number, _ = github
    project = world.root / "policies" / "projects" / "churn-model.yaml"
    project.write_text(
        project.read_text().replace(
            "  tracking_issue: 1\n", "  tracking_issue: 1\n  path: ml/churn\n"
        )
    )
    head = repo.push(BRANCH, {"ml/churn/docs/model_card.md": BROKEN_CARD})
    pr_event(world, "mono-1", number)
    process_inbox()
    deliver_outbox()
    [run] = _runs(repo, head)
    [note] = [a for a in run.annotations if a["path"].endswith("docs/model_card.md")]
    assert (note["path"], note["start_line"]) == ("ml/churn/docs/model_card.md", 6)


# --- phasegate github templates ------------------------------------------------------------


def test_templates_command_installs_forms_and_labels_and_is_idempotent(tmp_path):
    fake = FakeGitHub()
    repo = fake.add_repo("acme/team", files={".github/ISSUE_TEMPLATE/ask.yml": "name: Ask\n"})
    for i in range(36):
        repo.add_label(f"area-{i}")
    for name in ("Model", "succeeded", "ask"):  # beyond GitHub's first page of 30
        repo.add_label(name)
    fake.add_user_token("ghp_setup", login="team-lead")
    shipped = sorted(
        p.name for p in (ROOT / "examples" / "github" / "ISSUE_TEMPLATE").glob("*.yml")
    )
    with serving(fake.app) as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_GITHUB")}
        env |= {"PHASEGATE_GITHUB_API_URL": base, "PHASEGATE_GITHUB_TOKEN": "ghp_setup"}
        command = [
            sys.executable,
            "-m",
            "phasegate.cli",
            "github",
            "templates",
            "--repo",
            "acme/team",
        ]

        def run() -> subprocess.CompletedProcess:
            return subprocess.run(
                command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )

        first = run()
        assert first.returncode == 0, first.stdout + first.stderr
        lines = first.stdout.splitlines()
        assert ".github/ISSUE_TEMPLATE/ask.yml: updated" in lines  # with the blob sha
        assert {f".github/ISSUE_TEMPLATE/{n}: created" for n in shipped if n != "ask.yml"} <= set(
            lines
        )
        assert "label Data: created" in lines
        assert not [line for line in lines if line.startswith(("label Model", "label succeeded"))]
        assert not [line for line in lines if line.startswith("label Ask")]  # "ask" is there
        head = repo.commits[repo.branches["main"]].files
        for name in shipped:
            text = (ROOT / "examples" / "github" / "ISSUE_TEMPLATE" / name).read_bytes()
            assert head[f".github/ISSUE_TEMPLATE/{name}"] == text
        names = {label.name for label in repo.labels.values()}
        assert {"Data", "Explore", "Experiment", "Deploy", "failed"} <= names

        fake.clear_requests()
        second = run()
        assert second.returncode == 0, second.stdout + second.stderr
        assert all(line.endswith("already up to date") for line in second.stdout.splitlines())
        assert [c.method for c in fake.requests if c.method != "GET"] == []
