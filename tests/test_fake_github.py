"""The fake GitHub, driven by PyGithub itself: if PyGithub works against it, so can phasegate.

Every endpoint is exercised through the real client, over real HTTP. The behaviours the
integration must cope with (App token exchange and refresh, ETag/304, rate limits, 5xx) are
checked the way PyGithub meets them, including its own retry logic where it has one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import github
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, GithubIntegration

from tests import fake_github_spec
from tests.fake_github import SUBSET, FakeGitHub
from tests.servers import serving

PAT = "ghp_phasegateTestToken000000000000000000"
APP_ID = 42


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    """A fresh RSA key pair for the test App: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


@pytest.fixture
def fake(app_key: tuple[str, str]) -> FakeGitHub:
    fake = FakeGitHub()
    repo = fake.add_repo(
        "acme/churn",
        files={
            "policies/gates.yaml": "kind: Gate\nid: model-packaged\n",
            ".github/ISSUE_TEMPLATE/ask.md": "## Problem statement\n_Describe it_\n",
            "README.md": "hello\n",
        },
    )
    repo.add_issue("Ask: reduce churn", "## Problem statement\nCustomers leave.", labels=["Ask"])
    repo.add_pull(
        "model/12-churn-classifier",
        title="Churn classifier",
        user="ann",
        labels=["Model"],
        files={"models/card.md": "# Model card\n", "README.md": "hello\nworld\n"},
    )
    fake.add_user_token(PAT, login="ann")
    fake.add_app(APP_ID, app_key[1])
    fake.add_installation(APP_ID, "acme", installation_id=7)
    return fake


@pytest.fixture
def base(fake: FakeGitHub) -> Iterator[str]:
    with serving(fake.app) as url:
        yield url


def client(base: str, auth: Auth.Auth | None = None, **options: Any) -> github.Github:
    """PyGithub as GitHub Enterprise Server users configure it, without its own throttling."""
    options.setdefault("seconds_between_requests", 0)
    options.setdefault("seconds_between_writes", 0)
    return github.Github(base_url=f"{base}/api/v3", auth=auth or Auth.Token(PAT), **options)


def app_client(base: str, app_key: tuple[str, str], **options: Any) -> github.Github:
    auth = Auth.AppAuth(APP_ID, app_key[0]).get_installation_auth(7)
    return client(base, auth, **options)


# --- URLs and the base_url PyGithub is given ---


@pytest.mark.parametrize("prefix", ["", "/api/v3"])
def test_pygithub_works_with_either_base_url_form(fake, base, prefix):
    gh = github.Github(base_url=base + prefix, auth=Auth.Token(PAT), seconds_between_requests=0)
    repo = gh.get_repo("acme/churn")
    assert repo.url == f"{base}{prefix}/repos/acme/churn"
    assert repo.html_url == f"{base}/acme/churn"
    assert repo.default_branch == "main"
    assert [call.path for call in fake.calls("repos/get")] == ["/repos/acme/churn"]


def test_unknown_path_answers_404_and_bad_json_400(base):
    with httpx.Client(base_url=base, headers={"authorization": f"token {PAT}"}) as http:
        assert http.get("/repos/acme/churn/unknown").status_code == 404
        assert http.get("/repos/acme/nothing").json()["message"] == "Not Found"
        broken = http.post("/repos/acme/churn/labels", content=b"{not json")
    assert broken.status_code == 400
    assert broken.json()["message"] == "Problems parsing JSON"


# --- reading: repository, files, trees, commits ---


def test_contents_of_a_file_and_a_directory_at_a_ref(fake, base):
    repo = client(base).get_repo("acme/churn")
    head = fake.repo("acme/churn").branches["model/12-churn-classifier"]
    readme = repo.get_contents("README.md", ref=head)
    assert readme.decoded_content == b"hello\nworld\n"
    assert readme.encoding == "base64"
    # The blob id is git's own: `printf 'hello\n' | git hash-object --stdin`.
    assert repo.get_contents("README.md").sha == "ce013625030ba8dba906f756967f9e9ca394464a"
    listing = repo.get_contents("", ref="main")
    assert {(item.path, item.type) for item in listing} == {
        (".github", "dir"),
        ("README.md", "file"),
        ("policies", "dir"),
    }
    assert [item.path for item in repo.get_contents("policies")] == ["policies/gates.yaml"]
    with pytest.raises(github.UnknownObjectException):
        repo.get_contents("models/card.md", ref="main")
    with pytest.raises(github.GithubException) as missing:
        repo.get_contents("README.md", ref="no-such-branch")
    assert missing.value.status == 404
    assert missing.value.data["message"] == "No commit found for the ref no-such-branch"


def test_files_are_created_and_updated_with_githubs_sha_rules(fake, base, app_key):
    repo = client(base).get_repo("acme/churn")
    made = repo.create_file(".github/ISSUE_TEMPLATE/data.yml", "add data form", "name: Data\n")
    assert made["content"].path == ".github/ISSUE_TEMPLATE/data.yml"
    assert made["content"].sha == "2c5ffb328068e2d710137ef42b69fc80af329d67"  # git hash-object
    state = fake.repo("acme/churn")
    assert made["commit"].sha == state.branches["main"]
    assert state.commits[made["commit"].sha].message == "add data form"
    assert state.commits[state.branches["main"]].files[".github/ISSUE_TEMPLATE/data.yml"] == (
        b"name: Data\n"
    )
    with pytest.raises(github.GithubException) as unsupplied:  # replacing needs the blob sha
        repo.create_file("README.md", "overwrite", "bye\n")
    assert unsupplied.value.status == 422
    assert unsupplied.value.data["message"] == 'Invalid request.\n\n"sha" wasn\'t supplied.'
    with pytest.raises(github.GithubException) as stale:
        repo.update_file("README.md", "overwrite", "bye\n", sha="0" * 40)
    assert stale.value.status == 409
    current = repo.get_contents("README.md")
    updated = repo.update_file("README.md", "say bye", "bye\n", sha=current.sha, branch="main")
    assert updated["content"].sha != current.sha
    assert repo.get_contents("README.md").decoded_content == b"bye\n"
    with httpx.Client(base_url=base, headers={"authorization": f"token {PAT}"}) as http:
        invalid = http.put("/repos/acme/churn/contents/x.txt", json={"content": "eA=="})
    assert invalid.status_code == 422  # GitHub's schema: a message is required
    assert invalid.json()["message"] == 'Invalid request.\n\n"message" wasn\'t supplied.'
    with pytest.raises(github.GithubException) as refused:  # the App may only read contents
        app_client(base, app_key).get_repo("acme/churn").create_file("y.txt", "m", "y\n")
    assert refused.value.status == 403


def test_git_tree_is_flat_unless_recursive(base):
    repo = client(base).get_repo("acme/churn")
    flat = repo.get_git_tree("main")
    assert [(e.path, e.type) for e in flat.tree] == [
        (".github", "tree"),
        ("README.md", "blob"),
        ("policies", "tree"),
    ]
    deep = repo.get_git_tree("main", recursive=True)
    assert "policies/gates.yaml" in [e.path for e in deep.tree]
    assert ".github/ISSUE_TEMPLATE/ask.md" in [e.path for e in deep.tree]
    subtree = repo.get_git_tree(flat.tree[2].sha)
    assert [e.path for e in subtree.tree] == ["gates.yaml"]
    assert next(e for e in deep.tree if e.path == "README.md").size == 6


def test_a_git_tree_beyond_githubs_limit_is_listed_in_part_and_says_so(fake, base):
    fake.tree_limit = 3  # a repository with more entries than GitHub lists
    deep = client(base).get_repo("acme/churn").get_git_tree("main", recursive=True)
    assert len(deep.tree) == 3 and deep.raw_data["truncated"] is True
    fake.tree_limit = 100
    assert client(base).get_repo("acme/churn").get_git_tree("main").raw_data["truncated"] is False


def test_a_branch_ref_names_its_head_commit(fake, base):
    seeded = fake.repo("acme/churn")
    sha = seeded.push("feature/x", {"x.txt": "x\n"})
    repo = client(base).get_repo("acme/churn")
    ref = repo.get_git_ref("heads/feature/x")
    assert (ref.ref, ref.object.sha, ref.object.type) == ("refs/heads/feature/x", sha, "commit")
    assert repo.get_git_ref("heads/main").object.sha == seeded.branches["main"]
    with pytest.raises(github.GithubException) as unknown:
        repo.get_git_ref("heads/nope")
    assert unknown.value.status == 404


def test_commit_with_its_files_changed(fake, base):
    seeded = fake.repo("acme/churn")
    sha = seeded.push("main", {"policies/gates.yaml": None, "policies/roles.yaml": "kind: Roles\n"})
    commit = client(base).get_repo("acme/churn").get_commit("main")
    assert commit.sha == sha
    assert {(f.filename, f.status) for f in commit.files} == {
        ("policies/gates.yaml", "removed"),
        ("policies/roles.yaml", "added"),
    }
    with pytest.raises(github.GithubException) as unknown:
        client(base).get_repo("acme/churn").get_commit("0" * 40)
    assert unknown.value.status == 422


# --- reading: issues, pull requests, reviews ---


def test_issues_filter_by_label_state_and_since_and_include_pull_requests(fake, base):
    seeded = fake.repo("acme/churn")
    old = seeded.add_issue("Data: old", labels=["Data"], state="closed")
    old.updated_at -= timedelta(days=30)
    repo = client(base).get_repo("acme/churn")
    assert [i.number for i in repo.get_issues()] == [2, 1]  # newest first, the PR included
    assert repo.get_issue(2).pull_request is not None
    assert repo.get_issue(1).pull_request is None
    assert [i.number for i in repo.get_issues(labels=["ask"])] == [1]
    assert [i.number for i in repo.get_issues(state="closed")] == [old.number]
    recent = repo.get_issues(state="all", since=old.updated_at + timedelta(days=1))
    assert old.number not in [i.number for i in recent]


def test_issue_carries_body_labels_author_and_links_unchanged(fake, base):
    body = "## Problem statement\nSee https://github.com/acme/churn/issues/12 and #3."
    number = fake.repo("acme/churn").add_issue("Ask", body, user="ben", labels=["Ask"]).number
    issue = client(base).get_repo("acme/churn").get_issue(number)
    assert issue.body == body  # links in what users wrote are never rewritten
    assert issue.user.login == "ben"
    assert [label.name for label in issue.labels] == ["Ask"]
    assert issue.html_url == f"{base}/acme/churn/issues/{number}"
    assert issue.state == "open"


def test_pagination_follows_link_headers(fake, base):
    seeded = fake.repo("acme/churn")
    for n in range(5):
        seeded.add_issue(f"Experiment {n}", labels=["Experiment"])
    repo = client(base, per_page=2).get_repo("acme/churn")
    assert len(list(repo.get_issues(labels=["Experiment"]))) == 5
    first, *_ = fake.calls("issues/list-for-repo")
    pages = [call.query.get("page") for call in fake.calls("issues/list-for-repo")]
    assert pages == [None, "2", "3"]
    assert first.query == {"labels": "Experiment", "per_page": "2"}
    with httpx.Client(base_url=base, headers={"authorization": f"token {PAT}"}) as http:
        page = http.get("/repos/acme/churn/issues", params={"per_page": 2, "page": 2})
    url = f"{base}/repos/acme/churn/issues?per_page=2&page="
    assert page.headers["link"] == (  # 7 open issues and pull requests, 2 a page
        f'<{url}3>; rel="next", <{url}4>; rel="last", <{url}1>; rel="prev", <{url}1>; rel="first"'
    )
    assert repo.get_issues(labels=["Experiment"]).totalCount == 5  # read from rel="last"


def test_pull_request_head_files_reviews_and_merge(fake, base):
    seeded = fake.repo("acme/churn")
    seeded.add_review(2, "ben", "CHANGES_REQUESTED", "Add the signature")
    seeded.add_review(2, "cleo")
    pull = client(base).get_repo("acme/churn").get_pull(2)
    assert pull.head.ref == "model/12-churn-classifier"
    assert pull.head.sha == seeded.branches["model/12-churn-classifier"]
    assert pull.base.ref == "main"
    assert pull.user.login == "ann"
    assert [label.name for label in pull.labels] == ["Model"]
    assert (pull.draft, pull.merged, pull.changed_files, pull.commits) == (False, False, 2, 1)
    files = {f.filename: f for f in pull.get_files()}
    assert files["models/card.md"].status == "added"
    assert files["README.md"].status == "modified"
    assert files["README.md"].patch == "@@ -1 +1,2 @@\n hello\n+world"
    assert [(r.user.login, r.state) for r in pull.get_reviews()] == [
        ("ben", "CHANGES_REQUESTED"),
        ("cleo", "APPROVED"),
    ]
    # A push to the head branch moves the pull request, like a `synchronize` event.
    new_head = seeded.push("model/12-churn-classifier", {"models/MLmodel": "signature: {}\n"})
    assert pull.update() and pull.head.sha == new_head and pull.changed_files == 3
    merge = seeded.merge_pull(2, by="ben")
    pull.update()
    assert (pull.merged, pull.state, pull.merge_commit_sha) == (True, "closed", merge)
    assert seeded.branches["main"] == merge
    with pytest.raises(github.UnknownObjectException):
        client(base).get_repo("acme/churn").get_pull(1)  # an issue, not a pull request


def test_pull_requests_of_a_commit_as_github_lists_them(fake, base):
    seeded = fake.repo("acme/churn")
    head = seeded.branches["model/12-churn-classifier"]
    repo = client(base).get_repo("acme/churn")
    [pull] = repo.get_commit(head).get_pulls()  # a PR head: the open PR holding it
    assert (pull.number, pull.head.sha, pull.user.login) == (2, head, "ann")
    assert [label.name for label in pull.labels] == ["Model"]
    assert list(repo.get_commit(seeded.branches["main"]).get_pulls()) == []  # on main, no PR
    merge = seeded.merge_pull(2)
    # On the default branch now: the merged PR that brought the commit in.
    assert [p.number for p in repo.get_commit(head).get_pulls()] == [2]
    assert [p.merged_at is not None for p in repo.get_commit(merge).get_pulls()] == [True]
    assert fake.count("repos/list-pull-requests-associated-with-commit") == 4


# --- writing: check runs, statuses, labels, comments ---


def test_checks_api_refuses_a_personal_access_token(fake, base):
    repo = client(base).get_repo("acme/churn")
    with pytest.raises(github.GithubException) as refused:
        repo.create_check_run(
            "phasegate / model-packaged", fake.repo("acme/churn").branches["main"]
        )
    assert refused.value.status == 403
    assert refused.value.data["message"] == "You must authenticate via a GitHub App."
    assert fake.repo("acme/churn").check_runs == {}


def test_check_run_created_updated_in_place_and_listed(fake, base, app_key):
    seeded = fake.repo("acme/churn")
    head = seeded.branches["model/12-churn-classifier"]
    seeded.add_check_run(head, "ci / tests", conclusion="failure")
    repo = app_client(base, app_key).get_repo("acme/churn")
    annotation = {
        "path": "policies/gates.yaml",
        "start_line": 2,
        "end_line": 2,
        "annotation_level": "failure",
        "message": "unknown check kind",
    }
    run = repo.create_check_run(
        "phasegate / model-packaged",
        head,
        status="in_progress",
        details_url="https://phasegate.example/status",
        output={"title": "Evaluating", "summary": "…", "annotations": [annotation]},
    )
    assert (run.status, run.conclusion, run.app.slug) == ("in_progress", None, "phasegate")
    assert [p.number for p in run.pull_requests] == [2]
    run.edit(
        conclusion="failure",
        output={"title": "Blocked", "summary": "1 check failed", "annotations": [annotation]},
    )
    assert (run.status, run.conclusion, run.output.summary) == (
        "completed",
        "failure",
        "1 check failed",
    )
    assert run.output.annotations_count == 2  # annotations append, as GitHub documents
    assert run.completed_at is not None
    listed = {r.name: r for r in repo.get_commit(head).get_check_runs()}
    assert listed.keys() == {"ci / tests", "phasegate / model-packaged"}
    assert listed["ci / tests"].conclusion == "failure"
    assert repo.get_check_run(run.id).output.title == "Blocked"
    # Another App's run (CI) cannot be edited by phasegate.
    with pytest.raises(github.GithubException) as foreign:
        listed["ci / tests"].edit(conclusion="success")
    assert foreign.value.status == 403
    assert seeded.check_runs[run.id].annotations == [annotation, annotation]


def test_check_runs_listing_keeps_the_latest_run_per_name(fake, base, app_key):
    seeded = fake.repo("acme/churn")
    head = seeded.branches["main"]
    first = seeded.add_check_run(head, "ci / tests", conclusion="failure")
    rerun = seeded.add_check_run(head, "ci / tests", conclusion="success")
    commit = app_client(base, app_key).get_repo("acme/churn").get_commit(head)
    assert [r.id for r in commit.get_check_runs()] == [rerun.id]
    assert [r.id for r in commit.get_check_runs(filter="all")] == [rerun.id, first.id]
    assert [r.id for r in commit.get_check_runs(check_name="other")] == []


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            {"annotations": 51},
            "Invalid request.\n\nNo more than 50 items are allowed; 51 were supplied.",
        ),
        (
            {"summary": "x" * 65536},
            "Invalid request.\n\nOnly 65535 characters are allowed; 65536 were supplied.",
        ),
    ],
)
def test_check_run_limits_from_githubs_spec(fake, base, app_key, output, message):
    annotation = {
        "path": "README.md",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "warning",
        "message": "m",
    }
    body = {"title": "t", "summary": output.get("summary", "s")}
    if "annotations" in output:
        body["annotations"] = [annotation] * output["annotations"]
    repo = app_client(base, app_key).get_repo("acme/churn")
    with pytest.raises(github.GithubException) as rejected:
        repo.create_check_run(
            "phasegate / x", fake.repo("acme/churn").branches["main"], output=body
        )
    assert rejected.value.status == 422
    assert rejected.value.data["message"] == message
    assert rejected.value.data["documentation_url"].endswith("#create-a-check-run")


def test_check_run_validation_of_semantics_and_bytes(fake, base, app_key):
    head = fake.repo("acme/churn").branches["main"]
    repo = app_client(base, app_key).get_repo("acme/churn")

    def rejected(**arguments: Any) -> dict[str, Any]:
        with pytest.raises(github.GithubException) as error:
            repo.create_check_run("phasegate / x", head, **arguments)
        assert error.value.status == 422
        return error.value.data

    emoji = rejected(output={"title": "t", "summary": "🚦" * 20000})  # 20,000 chars, 80,000 bytes
    assert emoji["message"] == "Validation Failed"
    assert emoji["errors"][0]["message"] == "summary exceeds a maximum bytesize of 65535"
    assert rejected(status="completed")["message"] == (
        'Invalid request.\n\n"conclusion" wasn\'t supplied.'
    )
    assert rejected(conclusion="green")["message"].startswith(
        "Invalid request.\n\nFor 'properties/conclusion', \"green\" is not a member of"
    )
    with pytest.raises(github.GithubException) as unknown:
        repo.create_check_run("phasegate / x", "f" * 40)
    assert unknown.value.data["message"] == f"No commit found for SHA: {'f' * 40}"
    run = repo.create_check_run("phasegate / x", head)
    with pytest.raises(github.GithubException) as update:
        run.edit(status="completed")
    assert update.value.data["message"].startswith('Invalid request.\n\nNo subschema in "anyOf"')
    token = next(iter(fake.tokens))
    with httpx.Client(base_url=base, headers={"authorization": f"token {token}"}) as http:
        undated = http.patch(f"/repos/acme/churn/check-runs/{run.id}", json={"started_at": "today"})
    assert undated.status_code == 422
    assert undated.json()["message"] == (
        "Invalid request.\n\nFor 'properties/started_at', 'today' is not a 'date-time'."
    )


def test_commit_statuses_with_a_personal_token_and_combined_state(fake, base):
    seeded = fake.repo("acme/churn")
    head = seeded.branches["model/12-churn-classifier"]
    commit = client(base).get_repo("acme/churn").get_commit(head)
    assert commit.get_combined_status().state == "pending"  # no statuses yet
    status = commit.create_status(
        "failure",
        target_url="https://phasegate.example",
        description="1 failed",
        context="phasegate",
    )
    assert (status.state, status.context, status.creator.login) == ("failure", "phasegate", "ann")
    commit.create_status("success", context="phasegate")
    commit.create_status("success", context="ci")
    combined = commit.get_combined_status()
    assert combined.state == "success"
    assert combined.total_count == 2
    assert [s.state for s in commit.get_statuses()] == ["success", "success", "failure"]
    with httpx.Client(base_url=base, headers={"authorization": f"token {PAT}"}) as http:
        # The documented path, with a branch name for the ref (PyGithub uses the older one).
        listed = http.get("/repos/acme/churn/commits/model%2F12-churn-classifier/statuses")
    assert [s["context"] for s in listed.json()] == ["ci", "phasegate", "phasegate"]
    assert [s.context for s in seeded.statuses_for(head)] == ["phasegate", "phasegate", "ci"]
    with pytest.raises(github.GithubException) as invalid:
        commit.create_status("green")
    assert invalid.value.status == 422


def test_labels_on_issues_and_the_repository(fake, base):
    repo = client(base).get_repo("acme/churn")
    issue = repo.get_issue(1)
    issue.add_to_labels("phase:data")  # PyGithub sends a bare array; GitHub accepts it
    assert [label.name for label in issue.get_labels()] == ["Ask", "phase:data"]
    assert fake.repo("acme/churn").labels["phase:data"].color == "ededed"  # created on the way
    issue.remove_from_labels("Ask")
    assert fake.repo("acme/churn").issues[1].labels == ["phase:data"]
    with pytest.raises(github.GithubException) as missing:
        issue.remove_from_labels("Ask")
    assert (missing.value.status, missing.value.data["message"]) == (404, "Label does not exist")
    created = repo.create_label("phase:model", "0e8a16", "Model development")
    assert (created.name, created.color, created.description) == (
        "phase:model",
        "0e8a16",
        "Model development",
    )
    assert repo.get_label("phase:model").color == "0e8a16"
    with pytest.raises(github.GithubException) as duplicate:
        repo.create_label("Phase:Model", "000000")
    assert duplicate.value.data["errors"][0]["code"] == "already_exists"
    assert {label.name for label in repo.get_labels()} >= {"Ask", "Model", "phase:model"}


def test_comments_are_created_listed_and_edited(fake, base, app_key):
    issue = app_client(base, app_key).get_repo("acme/churn").get_issue(2)
    comment = issue.create_comment("Gate **model-packaged**: blocked")
    assert comment.user.login == "phasegate[bot]"
    assert comment.user.type == "Bot"
    comment.edit("Gate **model-packaged**: passed")
    assert [c.body for c in issue.get_comments()] == ["Gate **model-packaged**: passed"]
    assert fake.repo("acme/churn").comments(2)[0].body == "Gate **model-packaged**: passed"
    with pytest.raises(github.GithubException) as too_long:
        issue.create_comment("x" * 65537)
    assert too_long.value.data["errors"][0]["message"] == (
        "Body is too long (maximum is 65536 characters)"
    )


# --- GitHub App authentication ---


def test_app_installation_token_exchange(fake, base, app_key):
    integration = GithubIntegration(
        auth=Auth.AppAuth(APP_ID, app_key[0]), base_url=f"{base}/api/v3"
    )
    installation = integration.get_repo_installation("acme", "churn")
    assert (installation.id, installation.app_id) == (7, APP_ID)
    access = integration.get_access_token(7)
    assert access.token.startswith("ghs_")
    lifetime = access.expires_at - datetime.now(UTC)
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)
    gh = app_client(base, app_key)
    assert gh.get_repo("acme/churn").get_issue(1).title == "Ask: reduce churn"
    exchange, *_ = fake.calls("apps/create-installation-access-token")
    assert (exchange.auth, exchange.identity) == ("Bearer", "app:42")
    api = fake.calls("issues/get")[0]
    assert (api.auth, api.identity) == ("token", "installation:7")


def test_installation_token_refresh_and_server_side_expiry(fake, base, app_key):
    fake.token_ttl = timedelta(seconds=10)  # PyGithub renews tokens 20 s before they expire
    gh = app_client(base, app_key)
    repo = gh.get_repo("acme/churn")
    repo.get_issue(1)
    repo.get_issue(2)
    assert fake.count("apps/create-installation-access-token") == 3  # one per request
    fake.token_ttl = timedelta(hours=1)
    gh = app_client(base, app_key)
    gh.get_repo("acme/churn")
    fake.expire_tokens()  # the token dies without the client's clock knowing
    with pytest.raises(github.BadCredentialsException):
        gh.get_repo("acme/churn")
    assert fake.calls()[-1].status == 401


def test_app_jwt_is_verified(fake, base, app_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())

    def exchange(claims: dict[str, Any], key: Any = app_key[0]) -> dict[str, Any]:
        token = jwt.encode(claims, key, algorithm="RS256")
        with httpx.Client(base_url=base) as http:
            answer = http.post(
                "/app/installations/7/access_tokens", headers={"authorization": f"Bearer {token}"}
            )
        assert answer.status_code == 401
        return answer.json()

    good = {"iat": now - 60, "exp": now + 300, "iss": str(APP_ID)}
    assert exchange(good, other)["message"] == "A JSON web token could not be decoded"
    assert exchange({**good, "iss": "999"})["message"] == "A JSON web token could not be decoded"
    assert exchange({**good, "exp": now - 1})["message"].startswith(
        "'Expiration time' claim ('exp') must be a numeric value"
    )
    assert exchange({**good, "exp": now + 3600})["message"] == (
        "'Expiration time' claim ('exp') is too far in the future"
    )
    with httpx.Client(base_url=base, headers={"authorization": f"token {PAT}"}) as http:
        assert http.post("/app/installations/7/access_tokens").status_code == 401


def test_installation_sees_only_its_repositories_and_permissions(fake, base, app_key):
    fake.add_repo("acme/other")
    fake.add_repo("globex/secret", private=True)
    fake.installations[7].repositories = ["churn", "other"]
    fake.installations[7].permissions = {"metadata": "read", "issues": "read"}
    gh = app_client(base, app_key)
    with pytest.raises(github.UnknownObjectException):
        gh.get_repo("globex/secret")
    repo = gh.get_repo("acme/churn")
    with pytest.raises(github.GithubException) as denied:
        repo.create_check_run("phasegate / x", fake.repo("acme/churn").branches["main"])
    assert denied.value.status == 403
    assert denied.value.data["message"] == "Resource not accessible by integration"
    assert denied.value.headers["x-accepted-github-permissions"] == "checks=write"
    anonymous = github.Github(base_url=base, seconds_between_requests=0)
    with pytest.raises(github.UnknownObjectException):
        anonymous.get_repo("globex/secret")  # private repositories stay hidden


# --- conditional requests and rate limits ---


def test_etag_and_304_do_not_spend_rate_limit(fake, base):
    repo = client(base).get_repo("acme/churn")
    pull = repo.get_pull(2)
    spent = fake.rate_limit.used
    assert pull.etag is not None
    assert pull.update() is False  # 304 Not Modified
    last = fake.calls()[-1]
    assert (last.status, last.counted, last.headers["if-none-match"]) == (304, False, pull.etag)
    assert fake.rate_limit.used == spent
    fake.repo("acme/churn").add_review(2, "ben")
    fake.repo("acme/churn").issues[2].title = "Churn classifier v2"
    assert pull.update() is True
    assert pull.title == "Churn classifier v2"
    assert fake.rate_limit.used == spent + 1


def test_every_response_carries_rate_limit_headers(fake, base):
    fake.set_rate_limit(10, limit=100)
    with httpx.Client(base_url=base, headers={"authorization": f"token {PAT}"}) as http:
        headers = http.get("/repos/acme/churn").headers
        overview = http.get("/rate_limit").json()
    assert headers["x-ratelimit-limit"] == "100"
    assert headers["x-ratelimit-remaining"] == "9"
    assert headers["x-ratelimit-used"] == "91"
    assert headers["x-ratelimit-resource"] == "core"
    assert int(headers["x-ratelimit-reset"]) > time.time()
    assert overview["resources"]["core"]["remaining"] == 9  # asking costs nothing
    assert overview["rate"] == overview["resources"]["core"]


@pytest.mark.parametrize("status", [403, 429])
def test_primary_rate_limit_exhausted(fake, base, status):
    fake.set_rate_limit(1, status=status)
    gh = client(base, retry=None)
    gh.get_repo("acme/churn")
    with pytest.raises(github.GithubException) as limited:
        gh.get_repo("acme/churn")
    assert limited.value.status == status
    assert limited.value.headers["x-ratelimit-remaining"] == "0"
    assert (
        limited.value.data["message"]
        == f"API rate limit exceeded for user ID {fake.user_id('ann')}."
    )
    if status == 403:  # PyGithub recognises GitHub's 403 rate-limit answer, not a 429
        assert isinstance(limited.value, github.RateLimitExceededException)
    assert gh.get_rate_limit().resources.core.remaining == 0


def test_pygithub_waits_for_the_primary_rate_limit_reset(fake, base):
    fake.set_rate_limit(0, reset_in=1)
    started = time.monotonic()
    client(base).get_repo("acme/churn")  # GithubRetry sleeps until x-ratelimit-reset
    assert time.monotonic() - started >= 0.5
    assert [call.status for call in fake.calls("repos/get")] == [403, 200]
    assert fake.rate_limit.remaining == fake.rate_limit.limit - 1


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_rate_limit_with_retry_after(fake, base, status):
    fake.secondary_rate_limit("issues/get", retry_after=1, status=status)
    started = time.monotonic()
    issue = client(base).get_repo("acme/churn").get_issue(1)  # PyGithub honours Retry-After
    assert issue.number == 1
    assert time.monotonic() - started >= 1
    limited, answered = fake.calls("issues/get")
    assert (limited.status, answered.status, limited.counted) == (status, 200, False)
    fake.secondary_rate_limit("/repos/acme/churn/issues/*", retry_after=None)
    with pytest.raises(github.RateLimitExceededException) as refused:
        client(base, retry=None).get_repo("acme/churn").get_issue(1)
    assert refused.value.data["message"].startswith("You have exceeded a secondary rate limit")
    assert "retry-after" not in refused.value.headers


def test_injected_server_errors(fake, base):
    fake.fail("pulls/get", times=2, status=502)
    pull = client(base).get_repo("acme/churn").get_pull(2)  # GithubRetry retries 5xx
    assert pull.number == 2
    assert [call.status for call in fake.calls("pulls/get")] == [502, 502, 200]
    assert [call.counted for call in fake.calls("pulls/get")] == [False, False, True]
    fake.fail("/repos/acme/churn", status=503, method="GET")
    with pytest.raises(github.GithubException) as unavailable:
        client(base, retry=None).get_repo("acme/churn")
    assert unavailable.value.status == 503


def test_a_fault_after_some_requests_and_a_fault_after_the_write(fake, base, app_key):
    fake.fail("issues/create-comment", times=1, status=502, after=1, applied=True)
    issue = app_client(base, app_key, retry=None).get_repo("acme/churn").get_issue(1)
    issue.create_comment("first")  # let through
    with pytest.raises(github.GithubException) as lost:
        issue.create_comment("second")  # posted, but GitHub answers 502
    assert lost.value.status == 502
    assert [c.body for c in fake.repo("acme/churn").comments(1)] == ["first", "second"]
    assert [c.status for c in fake.calls("issues/create-comment")] == [201, 502]


# --- the request log ---


def test_every_request_is_recorded_without_its_credential(fake, base, app_key):
    gh = app_client(base, app_key)
    repo = gh.get_repo("acme/churn")
    repo.get_issue(1).create_comment("hello")
    assert [call.operation for call in fake.calls()] == [
        "apps/create-installation-access-token",
        "repos/get",
        "issues/get",
        "issues/create-comment",
    ]
    comment = fake.calls("issues/create-comment")[0]
    assert (comment.method, comment.path) == ("POST", "/repos/acme/churn/issues/1/comments")
    assert comment.body == {"body": "hello"}
    assert (comment.auth, comment.identity, comment.status) == ("token", "installation:7", 201)
    assert "authorization" not in comment.headers
    assert comment.headers["user-agent"] == "PyGithub/Python"
    recorded = json.dumps([vars(call) for call in fake.calls()], default=str)
    assert "ghs_" not in recorded and "eyJ" not in recorded  # no token, no JWT
    assert fake.count(method="GET") == 2
    assert fake.count(path="/repos/acme/churn/issues/*") == 2
    fake.clear_requests()
    assert fake.calls() == []


# --- the spec subset ---


def test_subset_records_its_source_and_githubs_documented_limits():
    subset = json.loads(SUBSET.read_text())
    assert subset["source"]["package"] == "@octokit/openapi"
    assert subset["source"]["version"] == fake_github_spec.PINNED_VERSION
    assert subset["source"]["tarball_integrity"].startswith("sha512-")
    assert set(subset["operations"]) == set(fake_github_spec.OPERATIONS)
    limits = {entry["field"]: entry for entry in subset["operations"]["checks/create"]["limits"]}
    assert limits["output.annotations"]["maxItems"] == 50
    assert limits["output.summary"]["maxLength"] == 65535
    assert "64 KB" in limits["output.annotations[].message"]["description"]


def test_spec_extraction_resolves_refs_nullable_limits_and_examples(monkeypatch):
    schema = {
        "type": "object",
        "properties": {
            "name": {"$ref": "#/components/schemas/name"},
            "note": {"type": "string", "nullable": True, "description": "Free text."},
        },
    }
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t"},
        "components": {
            "schemas": {"name": {"type": "string", "maxLength": 5, "description": "At most 5."}},
            "examples": {"thing": {"value": {"items": [1, 2, 3], "url": "u"}}},
        },
        "paths": {
            "/things/{id}": {
                "patch": {
                    "operationId": "things/update",
                    "summary": "Update a thing",
                    "externalDocs": {"url": "https://docs.github.com/things"},
                    "parameters": [
                        {"name": "per_page", "in": "query", "schema": {"type": "integer"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": schema}},
                    },
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "examples": {
                                        "default": {
                                            "summary": "A thing",
                                            "value": {"$ref": "#/components/examples/thing"},
                                        }
                                    }
                                }
                            }
                        }
                    },
                }
            }
        },
    }
    monkeypatch.setattr(fake_github_spec, "OPERATIONS", {"things/update": None})
    subset = fake_github_spec.extract(document, {"package": "p", "version": "1"})
    entry = subset["operations"]["things/update"]
    assert (entry["method"], entry["path"], entry["status"]) == ("PATCH", "/things/{id}", 200)
    assert entry["request_schema"]["properties"] == {
        "name": {"type": "string", "maxLength": 5},
        "note": {"type": ["string", "null"]},
    }
    assert entry["limits"] == [{"field": "name", "maxLength": 5, "description": "At most 5."}]
    assert entry["examples"] == {"default": {"items": [1], "url": "u"}}
    assert entry["query"] == {"per_page": {"type": "integer"}}
