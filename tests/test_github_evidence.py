"""Evidence read from GitHub (the fake, over real HTTP): only what the gates being evaluated
read, what the webhook already said taken from it, each resource once per evaluation,
reviews as GitHub counts them, and issue templates from the default branch."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime

import pytest

from gates.active import ActivePolicies
from gates.evaluate import evaluate
from gates.evidence import ProjectEvidence, assemble
from integrations.github.client import GithubAccess, GithubConfig
from integrations.github.evidence import GithubSource, standing
from integrations.github.inbound import normalise
from tests.github_world import (
    APP_ID,
    BRANCH,
    check_run_event,
    pull_request_event,
    seed,
)
from tests.paths import POLICIES
from tests.servers import serving
from tests.world import World

NOW = datetime.now(UTC)
REVIEWED = """\
  - id: approved-review
    title: A reviewer approved the PR on GitHub
    expr: github.pull_request.reviews.exists(r, r.state == "APPROVED")
  - id: touches-docs
    title: The PR changes the docs
    expr: github.pull_request.files_changed.exists(f, f.startsWith("docs/"))
"""


@pytest.fixture
def github(tmp_path):
    """The seeded fake GitHub, served; GitHub evidence read with a copy of the policies."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    fake, repo, number, _head, private = seed(World(tmp_path, store=None))  # type: ignore[arg-type]
    policies = ActivePolicies(tmp_path / "policies")
    policies.reload()
    with serving(fake.app) as base:
        access = GithubAccess(GithubConfig(f"{base}/api/v3", str(APP_ID), private))
        yield fake, repo, number, base, policies, GithubSource(access, lambda: policies.current)


def _events(name: str, body: dict) -> list:
    return normalise(name, body, datetime.now(UTC))


def _decide(policies: ActivePolicies, fragment: dict, gate: str):
    evidence = assemble(ProjectEvidence(key="churn-model"), [fragment])
    current = policies.current
    return evaluate(current.gates[gate], evidence, [], [], NOW, current)


def _operations(fake, since: int) -> Counter:
    return Counter(call.operation for call in fake.requests[since:])


def test_a_warm_synchronize_reads_only_what_the_gates_read(github):
    fake, repo, number, base, policies, source = github
    project = policies.current.projects["churn-model"]
    body = pull_request_event(repo, number, "opened", web=base)
    source.collect_after(project, number, _events("pull_request", body))  # cold cache
    repo.push(BRANCH, {"src/train.py": "# retrained\n"})
    body = pull_request_event(repo, number, web=base)
    before = len(fake.requests)
    fragment = source.collect_after(project, number, _events("pull_request", body))
    # The repository, the PR and its files changed are not asked again: the payload says
    # what model-packaged reads of them, and none of its checks names the files changed.
    assert _operations(fake, before) == Counter(
        {
            "git/get-tree": 1,  # the new head's files
            "issues/list-for-repo": 1,  # the Ask's metric (304: unchanged)
            "checks/list-for-ref": 1,  # CI on the new head
            "repos/get-combined-status-for-ref": 1,
        }
    )
    assert sum(call.counted for call in fake.requests[before:]) == 3
    # Complete for what the gate reads: the same decision, on the same gate digest, as from
    # the pull request read from the API.
    before = len(fake.requests)
    full = source.collect(project, number)
    assert _operations(fake, before)["pulls/get"] == 1
    assert fragment["github"]["pull_request"]["head_sha"] == repo.branches[BRANCH]
    assert fragment["subject"] == full["subject"]
    mine, theirs = (
        _decide(policies, fragment, "model-packaged"),
        _decide(policies, full, "model-packaged"),
    )
    assert (mine.status, mine.gate_digest) == (theirs.status, theirs.gate_digest)


def test_a_delivery_without_the_whole_pr_reads_it_once(github):
    fake, repo, number, base, policies, source = github
    head = repo.branches[BRANCH]
    body = check_run_event(repo, head, "tests", "completed", app_id=15368, web=base)
    body["check_run"]["pull_requests"] = [{"number": number, "head": {"sha": head}}]
    [event] = _events("check_run", body)
    assert event.subject["pull_request"] == str(number)
    before = len(fake.requests)
    fragment = source.collect_after(policies.current.projects["churn-model"], number, [event])
    assert _operations(fake, before)["pulls/get"] == 1
    assert _operations(fake, before)["repos/get"] == 0  # the check run's payload says that
    assert fragment["github"]["pull_request"]["author"] == "erin-ds"


def test_files_changed_and_reviews_are_read_only_for_a_gate_that_names_them(github, tmp_path):
    fake, repo, number, base, policies, source = github
    project = policies.current.projects["churn-model"]
    events = _events("pull_request", pull_request_event(repo, number, web=base))
    before = len(fake.requests)
    source.collect_after(project, number, events)
    assert _operations(fake, before)["pulls/list-reviews"] == 0
    assert _operations(fake, before)["pulls/list-files"] == 0

    gate = tmp_path / "policies" / "gates" / "model-packaged.yaml"
    gate.write_text(gate.read_text().replace("approvals:\n", REVIEWED + "approvals:\n", 1))
    assert policies.reload() == []
    fragment = source.collect_after(project, number, events)
    assert fragment["github"]["pull_request"]["reviews"] == []
    result = _decide(policies, fragment, "model-packaged")
    outcomes = {c.id: c.outcome for c in result.checks}
    assert (outcomes["approved-review"], outcomes["touches-docs"]) == ("failed", "passed")

    repo.add_review(number, "dave-ml", "APPROVED")
    repo.add_review(number, "dave-ml", "COMMENTED", "one more thought")  # does not undo it
    fragment = source.collect_after(project, number, events)
    [review] = fragment["github"]["pull_request"]["reviews"]
    assert (review["author"], review["state"], review["commit"]) == (
        "dave-ml",
        "APPROVED",
        repo.branches[BRANCH],
    )
    assert review["url"].endswith(
        f"/pull/{number}#pullrequestreview-{repo.pull(number).reviews[0].id}"
    )
    result = _decide(policies, fragment, "model-packaged")
    assert {c.id: c.outcome for c in result.checks}["approved-review"] == "passed"


def test_reviews_count_as_github_counts_them():
    def review(n, user, state, at):
        return {
            "id": n,
            "user": {"login": user},
            "state": state,
            "submitted_at": f"2026-11-20T10:0{at}:00Z",
            "html_url": f"https://github.com/acme/churn/pull/5#pullrequestreview-{n}",
            "commit_id": "abc",
        }

    shown = standing(
        [
            review(1, "ann", "APPROVED", 1),
            review(2, "ann", "COMMENTED", 2),  # a later comment keeps the approval
            review(3, "ben", "APPROVED", 1),
            review(4, "ben", "CHANGES_REQUESTED", 3),  # a later decision replaces it
            review(5, "cleo", "DISMISSED", 1),  # a dismissed approval no longer counts
            review(6, "dan", "COMMENTED", 1),
            review(7, "eve", "PENDING", 1),  # not submitted: nobody sees it
        ]
    )
    assert [(r["author"], r["state"], r["url"][-1]) for r in shown] == [
        ("ann", "APPROVED", "1"),
        ("ben", "CHANGES_REQUESTED", "4"),
        ("cleo", "COMMENTED", "5"),
        ("dan", "COMMENTED", "6"),
    ]


def test_issue_templates_are_read_from_the_default_branch_not_the_pr(github):
    fake, repo, _number, base, policies, source = github
    template = "---\nname: Data\nlabels: Data\n---\n## Datasets\nName them.\n\n## Known issues\nList them.\n"
    repo.push("main", {".github/ISSUE_TEMPLATE/data.md": template})
    issue = repo.add_issue(
        "Data: refunds", "## Datasets\nrefunds\n\n## Known issues\nList them.\n", labels=["Data"]
    )
    weakened = template.replace("List them.", "Describe gaps.")
    pull = repo.add_pull("data/30-refunds", files={".github/ISSUE_TEMPLATE/data.md": weakened})
    events = _events("pull_request", pull_request_event(repo, pull.number, web=base))
    project = policies.current.projects["churn-model"]
    before = len(fake.requests)
    fragment = source.collect_after(project, pull.number, events)
    [shown] = [i for i in fragment["github"]["issues"] if i["number"] == issue.number]
    assert shown["template"]["Known issues"] == "List them."  # main's, not the PR's
    result = _decide(policies, fragment, "data-assumptions-checked")
    [known] = [c for c in result.checks if c.id == "known-issues"]
    assert known.outcome == "failed" and "Known issues" in known.found
    trees = [c.path for c in fake.requests[before:] if c.operation == "git/get-tree"]
    assert sorted(trees) == sorted(
        [
            f"/repos/{repo.full_name}/git/trees/main",
            f"/repos/{repo.full_name}/git/trees/{pull_head(repo, pull.number)}",
        ]
    )


def pull_head(repo, number: int) -> str:
    return repo.branches[repo.pull(number).head]


def test_one_evaluation_asks_for_each_resource_once(github):
    fake, repo, _number, _base, policies, source = github
    repo.push(
        "main", {".github/ISSUE_TEMPLATE/data.md": "---\nlabels: Data\n---\n## Known issues\nx\n"}
    )
    before = len(fake.requests)
    source.collect(policies.current.projects["churn-model"])  # the project on its main branch
    asked = Counter(
        (c.method, c.path, tuple(sorted(c.query.items()))) for c in fake.requests[before:]
    )
    assert asked and max(asked.values()) == 1  # the tree serves both files and templates
    assert _operations(fake, before)["git/get-tree"] == 1
