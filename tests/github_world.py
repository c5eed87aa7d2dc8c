"""A fake GitHub holding the example project (repository, DSLP issues, a model PR), shared
by the GitHub tests and bench/github_requests.py."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flows.runtime import runtime
from gates.scenario import load_scenario
from tests.fake_github import FakeGitHub, Repo
from tests.paths import EXAMPLES, POLICIES
from tests.servers import serving
from tests.world import World

REPO = "acme/churn-model"
BRANCH = "model/12-churn-classifier"
APP_ID = 42
WEBHOOKS = Path(__file__).resolve().parent / "fixtures" / "github-webhooks"


def _key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _body(issue: dict) -> str:
    return "\n\n".join(
        f"## {heading}\n{text}" for heading, text in issue.get("sections", {}).items()
    )


def seed(world: World) -> tuple[FakeGitHub, Repo, int, str, str]:
    """(fake, repo, PR number, PR head sha, the App's private key PEM)."""
    evidence = load_scenario(EXAMPLES / "model-packaged.passed.json").evidence
    fake = FakeGitHub()
    files = {
        path: f.content or "" for path, f in evidence.files.items() if path != "docs/model_card.md"
    }
    files |= {
        f"policies/{p.relative_to(POLICIES)}": p.read_text() for p in POLICIES.rglob("*.yaml")
    }
    repo = fake.add_repo(REPO, files=files)
    repo.add_issue("Churn tracking", "Tracking issue", labels=["Project"])  # #1
    for issue in sorted(evidence.github.issues, key=lambda i: i.number):
        while len(repo.issues) + 1 < issue.number:
            repo.add_issue("filler", "")
        body = _body(issue.model_dump()) + "".join(f"\nSee #{n}" for n in issue.links)
        repo.add_issue(issue.title, body, labels=issue.labels, user=issue.author or "octocat")
    card = evidence.files["docs/model_card.md"].content
    pull = repo.add_pull(
        BRANCH, files={"docs/model_card.md": card}, labels=["Model"], user="erin-ds"
    )
    head = repo.branches[BRANCH]
    repo.add_check_run(head, "tests", conclusion="success")
    private, public = _key()
    fake.add_app(42, public)
    fake.add_installation(42, "acme", installation_id=7)
    # What GitHub does not hold comes from the local checkout: the MLflow facts.
    mlflow = evidence.mlflow.model_dump(mode="json")
    mlflow["run"]["tags"]["mlflow.source.git.commit"] = head
    (world.checkout / ".phasegate").mkdir(parents=True)
    (world.checkout / ".phasegate" / "evidence.json").write_text(json.dumps({"mlflow": mlflow}))
    return fake, repo, pull.number, head, private


def connect(world: World, monkeypatch: pytest.MonkeyPatch, base: str, private: str) -> None:
    """Point phasegate (this process and the flow processes it starts) at the fake GitHub
    served at ``base`` as the App, with the example project in model-development, the phase
    whose gate its model PR is checked by."""
    monkeypatch.setenv("PHASEGATE_GITHUB_API_URL", f"{base}/api/v3")
    monkeypatch.setenv("PHASEGATE_GITHUB_APP_ID", "42")
    monkeypatch.setenv("PHASEGATE_GITHUB_PRIVATE_KEY", private)
    runtime.cache_clear()
    world.move_to("model-development")


@contextmanager
def connected(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeGitHub, Repo, int, str]]:
    """The seeded fake GitHub, served, phasegate configured for it as an App, and the project
    in model development: (fake, repo, PR number, PR head sha)."""
    fake, repo, number, head, private = seed(world)
    with serving(fake.app) as base:
        connect(world, monkeypatch, base, private)
        yield fake, repo, number, head
    runtime.cache_clear()


def pr_event(
    world: World, delivery: str, number: int, kind: str = "pull_request.synchronize"
) -> None:
    """A stored webhook about pull request ``number`` of the example repository."""
    world.store.add_inbox_event(
        source="github",
        delivery_id=delivery,
        kind=kind,
        payload={
            "action": kind.split(".")[1],
            "repository": {"full_name": REPO},
            "pull_request": {"number": number, "head": {"ref": BRANCH}},
        },
        received_at=datetime.now(UTC),
    )


# --- GitHub's published webhook payloads, told about the seeded world ---------------------


@cache
def _published(name: str) -> dict[str, Any]:
    return json.loads((WEBHOOKS / name).read_text())


def published(name: str) -> dict[str, Any]:
    """A fresh copy of a published payload, e.g. ``pull_request/opened.payload.json``."""
    return copy.deepcopy(_published(name))


def _fill(shown: dict[str, Any], **values: Any) -> None:
    """Set the fields the published shape has (a review's PR has no ``merged``)."""
    shown.update({key: value for key, value in values.items() if key in shown})


def _repository(repo: Repo, web: str, shown: dict[str, Any]) -> dict[str, Any]:
    _fill(
        shown,
        id=repo.id,
        name=repo.name,
        full_name=repo.full_name,
        html_url=f"{web}/{repo.full_name}",
        url=f"{web}/api/v3/repos/{repo.full_name}",
        default_branch=repo.default_branch,
    )
    shown["owner"]["login"] = repo.owner
    return shown


def _pull(repo: Repo, web: str, number: int, shown: dict[str, Any]) -> dict[str, Any]:
    issue, pull = repo.issues[number], repo.pull(number)
    _fill(
        shown,
        number=number,
        title=issue.title,
        html_url=f"{web}/{repo.full_name}/pull/{number}",
        state=issue.state,
        draft=pull.draft,
        merged=pull.merged,
        labels=[{"name": name, "color": "ededed"} for name in issue.labels],
    )
    shown["user"]["login"] = issue.user
    for side, branch in (("head", pull.head), ("base", pull.base)):
        shown[side].update(ref=branch, sha=repo.branches[branch], label=f"{repo.owner}:{branch}")
        _repository(repo, web, shown[side]["repo"])
    return shown


def pull_request_event(
    repo: Repo, number: int, action: str = "synchronize", web: str = "https://github.com"
) -> dict[str, Any]:
    """GitHub's ``pull_request`` payload for the PR as the fake holds it now."""
    name = "opened" if action == "opened" else "synchronize"
    body = published(f"pull_request/{name}.payload.json")
    body.update(action=action, number=number)
    _repository(repo, web, body["repository"])
    _pull(repo, web, number, body["pull_request"])
    return body


def review_event(
    repo: Repo, number: int, user: str, state: str, web: str = "https://github.com"
) -> dict[str, Any]:
    """``pull_request_review.submitted`` for a review the fake holds (``Repo.add_review``)."""
    body = published("pull_request_review/submitted.payload.json")
    _repository(repo, web, body["repository"])
    _pull(repo, web, number, body["pull_request"])
    body["review"].update(state=state.lower(), commit_id=repo.branches[repo.pull(number).head])
    body["review"]["user"]["login"] = user
    return body


def check_run_event(
    repo: Repo, sha: str, name: str, action: str, app_id: int, web: str = "https://github.com"
) -> dict[str, Any]:
    """GitHub's ``check_run`` payload (the published ``rerequested`` one: without its pull
    requests, as GitHub sends them for a fork's PR)."""
    body = published("check_run/rerequested.payload.json")
    body["action"] = action
    body["check_run"].update(name=name, head_sha=sha, pull_requests=[])
    body["check_run"]["app"]["id"] = app_id
    body["check_run"]["check_suite"].update(head_sha=sha, pull_requests=[])
    _repository(repo, web, body["repository"])
    return body


def check_suite_event(
    repo: Repo, sha: str, app_id: int, action: str = "completed", web: str = "https://github.com"
) -> dict[str, Any]:
    """GitHub's ``check_suite`` payload (the published ``completed.1``: no pull requests)."""
    body = published("check_suite/completed.1.payload.json")
    body["action"] = action
    body["check_suite"].update(head_sha=sha, pull_requests=[])
    body["check_suite"]["app"]["id"] = app_id
    _repository(repo, web, body["repository"])
    return body


def push_event(
    repo: Repo, branch: str, before: str, paths: list[str], web: str = "https://github.com"
) -> dict[str, Any]:
    """GitHub's ``push`` payload for the fake's latest commit on ``branch``."""
    body = published("push/payload.json")
    after = repo.branches[branch]
    commit = {"id": after, "message": "Update", "added": [], "removed": [], "modified": paths}
    body.update(
        ref=f"refs/heads/{branch}",
        before=before,
        after=after,
        created=False,
        deleted=False,
        forced=False,
        commits=[commit],
        head_commit=commit,
    )
    _repository(repo, web, body["repository"])
    return body


def deliver(world: World, event: str, body: dict[str, Any], delivery: str) -> None:
    """Store a delivery the way the receiver does (the tests that go through the receiver
    itself POST the signed bytes instead)."""
    from integrations.github.inbound import kind

    world.store.add_inbox_event(
        source="github",
        delivery_id=delivery,
        kind=kind(event, body),
        payload=body,
        received_at=datetime.now(UTC),
    )
