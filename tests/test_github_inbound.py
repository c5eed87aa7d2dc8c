"""Which GitHub deliveries phasegate acts on, fed GitHub's published payloads: every event
type is explicit, and the ones that cannot change a decision are finished with a reason
instead of costing a full evaluation."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gates.active import ActivePolicies
from integrations.github.client import GithubAccess, GithubConfig
from integrations.github.evidence import GithubSource
from integrations.github.inbound import ignored, kind, normalise, pushed_paths, tie_to_pulls
from integrations.github.intake import Intake
from integrations.github.policies import install
from tests.github_world import (
    APP_ID,
    BRANCH,
    REPO,
    WEBHOOKS,
    check_run_event,
    check_suite_event,
    published,
    push_event,
    seed,
)
from tests.paths import POLICIES
from tests.servers import serving

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
PUBLISHED = sorted(WEBHOOKS.glob("*/*.json"))


def _name(path: Path) -> str:
    return path.parent.name


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_published_payload_is_either_acted_on_or_ignored_with_a_reason(path):
    body = published(f"{path.parent.name}/{path.name}")
    why = ignored(_name(path), body, str(APP_ID))
    assert why is None or (isinstance(why, str) and why)
    assert normalise(_name(path), body, NOW)  # and always reads as events


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("ping/payload.json", "ping (webhook configured)"),
        ("push/payload.json", "push of tag simple-tag: gates read branches, not tags"),
        ("issue_comment/created.payload.json", "comments are not evidence"),
        ("pull_request/assigned.payload.json", "pull_request.assigned does not change"),
        ("pull_request_review_comment/created.payload.json", "review comments are not"),
        ("workflow_run/completed.payload.json", "CI results arrive as check runs"),
        ("label/created.payload.json", "a repository's labels are not evidence"),
        ("check_suite/requested.payload.json", "the pull_request event of the same push"),
        ("issues/pinned.payload.json", "issues.pinned does not change what any gate reads"),
    ],
)
def test_deliveries_that_cannot_change_a_decision_say_why(fixture, expected):
    name = fixture.split("/")[0]
    assert expected in (ignored(name, published(fixture), str(APP_ID)) or "")


@pytest.mark.parametrize(
    "fixture",
    [
        "pull_request/opened.payload.json",
        "pull_request/synchronize.payload.json",
        "pull_request/labeled.payload.json",
        "pull_request/closed.payload.json",
        "pull_request/ready_for_review.payload.json",
        "pull_request_review/submitted.payload.json",
        "pull_request_review/dismissed.payload.json",
        "issues/opened.payload.json",
        "issues/edited.payload.json",
        "issues/labeled.payload.json",
        "check_run/completed.payload.json",  # another App's (CI) run finished
        "check_suite/completed.payload.json",
        "status/payload.json",
    ],
)
def test_deliveries_about_evidence_are_acted_on(fixture):
    assert ignored(fixture.split("/")[0], published(fixture), str(APP_ID)) is None


def test_an_unknown_event_type_is_ignored_with_its_name():
    assert ignored("deployment_review", {"action": "approved"}) == (
        "phasegate does not act on GitHub 'deployment_review' events"
    )


def test_push_to_another_branch_is_ignored_and_to_the_default_branch_acted_on():
    body = published("push/payload.json")
    body.update(ref="refs/heads/feature/x", deleted=False)
    assert ignored("push", body) == (
        "push to feature/x, not the default branch master: pull request events cover other branches"
    )
    body["ref"] = "refs/heads/master"
    assert ignored("push", body) is None
    body["deleted"] = True
    assert ignored("push", body) == "push deleting branch master"


def test_pushed_paths_and_when_the_payload_cannot_tell():
    body = published("push/payload.json")
    body["commits"] = [
        {"added": ["policies/gates/new.yaml"], "modified": ["README.md"], "removed": []},
        {"added": [], "modified": [], "removed": ["policies/old.yaml"]},
    ]
    assert pushed_paths(body) == {"policies/gates/new.yaml", "README.md", "policies/old.yaml"}
    body["forced"] = True
    assert pushed_paths(body) is None


def test_phasegates_own_check_runs_are_not_evidence_but_a_rerun_of_them_is_acted_on():
    own = published("check_run/completed.payload.json")
    own["check_run"]["name"] = "phasegate / model-packaged"
    assert ignored("check_run", own) == (
        "phasegate's own check run 'phasegate / model-packaged' (completed) is not evidence"
    )
    by_app = published("check_run/completed.payload.json")  # another name, but our App's
    by_app["check_run"]["app"]["id"] = APP_ID
    assert "phasegate's own check run" in (ignored("check_run", by_app, str(APP_ID)) or "")
    assert ignored("check_run", by_app, "7") is None  # CI of another App: evidence
    suite = published("check_suite/completed.1.payload.json")
    suite["check_suite"]["app"]["id"] = APP_ID
    assert ignored("check_suite", suite, str(APP_ID)) == (
        f"phasegate's own check suite of App {APP_ID} (completed) is not evidence"
    )
    rerun = published("check_run/rerequested.payload.json")
    rerun["check_run"]["name"] = "phasegate / model-packaged"
    assert ignored("check_run", rerun, str(APP_ID)) is None
    [event] = normalise("check_run", rerun, NOW, "delivery-1")
    assert event.subject["rerun"] == "delivery-1"  # the press of "Re-run" is part of the key
    assert "rerun" not in normalise("check_run", own, NOW, "delivery-2")[0].subject


@pytest.fixture
def github(tmp_path):
    """The seeded fake GitHub, served, and phasegate's App access to it."""
    from tests.world import World

    world = World(tmp_path, store=None)  # type: ignore[arg-type]
    fake, repo, number, head, private = seed(world)
    with serving(fake.app) as base:
        access = GithubAccess(GithubConfig(f"{base}/api/v3", str(APP_ID), private))
        policies = ActivePolicies(POLICIES)
        policies.reload()
        source = GithubSource(access, lambda: policies.current)
        yield fake, repo, number, head, access, source, policies


def test_check_run_and_suite_without_pull_requests_are_tied_to_the_pr_of_their_head(github):
    fake, repo, number, head, _access, source, _ = github
    for name, body in (
        ("check_run", check_run_event(repo, head, "phasegate / model-packaged", "rerequested", 42)),
        ("check_suite", check_suite_event(repo, head, app_id=15368)),
    ):
        events = normalise(name, body, NOW, "d")
        assert "pull_request" not in events[0].subject  # GitHub named no PR
        [event] = tie_to_pulls(name, events, source.pulls_of_commit)
        assert event.subject == {
            "repo": REPO,
            "pull_request": str(number),
            **({"rerun": "d"} if name == "check_run" else {}),
        }
        assert event.payload["pull_request"]["head"]["ref"] == BRANCH  # the PR, as GitHub said
    assert fake.count("repos/list-pull-requests-associated-with-commit") == 2
    # A commit that heads no open pull request stays a project-wide event.
    main = repo.branches["main"]
    events = normalise("check_suite", check_suite_event(repo, main, app_id=15368), NOW)
    [event] = tie_to_pulls("check_suite", events, source.pulls_of_commit)
    assert "pull_request" not in event.subject


def test_installation_deleted_or_suspended_drops_the_kept_credentials(github):
    fake, _repo, _number, _head, access, source, policies = github
    intake = Intake(access, source, policies, str(APP_ID))
    access.client(REPO).requester.requestJson("GET", f"/repos/{REPO}")
    assert fake.count("apps/get-repo-installation") == 1
    for action in ("deleted", "suspend"):
        body = published(f"installation/{action}.payload.json")
        body["installation"]["account"]["login"] = "acme"
        taken = intake.take(kind("installation", body), body, normalise("installation", body, NOW))
        assert taken.events == [] and taken.status == "done"
        if action == "deleted":
            assert taken.note == (
                f"installation {body['installation']['id']} on acme deleted: dropped the "
                f"credentials kept for {REPO}"
            )
        else:
            assert taken.note.endswith("suspend: no credentials were kept for it")
    access.client(REPO).requester.requestJson("GET", f"/repos/{REPO}")
    assert fake.count("apps/get-repo-installation") == 2  # asked again, not the dropped token


def test_a_push_to_another_branch_costs_no_github_request(github):
    fake, repo, *_rest, access, source, policies = github
    before = len(fake.requests)
    body = push_event(repo, BRANCH, repo.branches["main"], ["src/train.py"])
    taken = Intake(access, source, policies, str(APP_ID)).take(
        "push", body, normalise("push", body, NOW)
    )
    assert taken.events == [] and "not the default branch main" in (taken.note or "")
    assert len(fake.requests) == before


def _policy_intake(github, tmp_path):
    """An Intake for the policy repository, installing into a copy of the shipped policies."""
    _fake, _repo, _number, _head, access, source, _policies = github
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    policies = ActivePolicies(directory)
    policies.reload()
    return Intake(access, source, policies, str(APP_ID), policy_repo=REPO), directory


def _take_push(intake, repo, after, before, paths, at):
    """The delivery of the push of ``after`` onto main, received ``at``."""
    body = push_event(repo, "main", before, paths) | {"after": after}
    return intake.take("push", body, normalise("push", body, at, f"push-{after[:8]}"))


def test_a_push_delivered_after_a_newer_one_does_not_roll_the_policies_back(github, tmp_path):
    fake, repo, *_rest = github
    intake, directory = _policy_intake(github, tmp_path)
    path = "policies/gates/model-packaged.yaml"
    start = repo.branches["main"]
    text = repo.commits[start].files[path].decode()
    older = repo.push("main", {path: text.replace("title: Model packaged", "title: Older")})
    newer = repo.push("main", {path: text.replace("title: Model packaged", "title: Newer")})
    first = _take_push(intake, repo, newer, older, [path], NOW)
    assert first.policies_changed
    assert first.note.startswith(f"policies of {REPO}@{newer[:12]} installed")
    # GitHub delivers the older push last (or an admin redelivers it): it arrived later, but
    # its commit is no longer the head of main.
    late = _take_push(intake, repo, older, start, [path], datetime(2026, 11, 20, 10, 5, tzinfo=UTC))
    assert (late.status, late.policies_changed) == ("done", False)
    assert late.note == (
        f"push of {REPO}@{older[:12]} superseded by {newer[:12]}, the head of main, whose "
        "policies are in force"
    )
    assert "title: Newer" in (directory / "gates" / "model-packaged.yaml").read_text()
    assert fake.count("git/get-ref") == 2  # one read of the branch per policy push
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkouts", "policies"]  # no debris


def test_a_superseded_push_installs_the_heads_policies_when_no_later_push_does(github, tmp_path):
    _fake, repo, *_rest = github
    intake, directory = _policy_intake(github, tmp_path)
    path = "policies/gates/model-packaged.yaml"
    start = repo.branches["main"]
    text = repo.commits[start].files[path].decode()
    policy = repo.push("main", {path: text.replace("title: Model packaged", "title: Newer")})
    readme = repo.push("main", {"README.md": "unrelated\n"})
    assert _take_push(intake, repo, readme, policy, ["README.md"], NOW).note is None  # no policy
    late = _take_push(intake, repo, policy, start, [path], NOW)
    assert late.policies_changed
    assert late.note.startswith(
        f"push of {REPO}@{policy[:12]} superseded by {readme[:12]}, the head of main: "
        f"policies of {REPO}@{readme[:12]} installed"
    )
    assert "title: Newer" in (directory / "gates" / "model-packaged.yaml").read_text()
    assert {e.payload["after"] for e in late.events if e.kind == "policies.installed"} == {readme}


def test_policies_from_a_tree_github_lists_only_in_part_are_not_installed(github, tmp_path):
    fake, repo, *_rest, _access, source, _policies = github
    target = tmp_path / "installed"
    assert install(source, REPO, "main", repo.branches["main"], "policies", target).installed
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    path = "policies/gates/model-packaged.yaml"
    text = repo.commits[repo.branches["main"]].files[path].decode()
    sha = repo.push("main", {path: text.replace("title: Model packaged", "title: Cut")})
    listed = source.reader.get(REPO, f"/repos/{REPO}/git/trees/{sha}", {"recursive": "1"})
    fake.tree_limit = len(listed["tree"]) - 1  # GitHub leaves the last entry out
    outcome = install(source, REPO, "main", sha, "policies", target)
    assert not outcome.installed
    assert outcome.note == (
        f"policies of {REPO}@{sha[:12]} not installed; the policy set in force stays: GitHub "
        f"lists the files of {REPO}@{sha[:12]} only in part (its tree is truncated: more than "
        "100,000 entries or 7 MB), so policies/ cannot be read whole"
    )
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
