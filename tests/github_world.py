"""A fake GitHub holding the example project (repository, DSLP issues, a model PR), shared
by the GitHub tests and bench/github_requests.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

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


@contextmanager
def connected(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeGitHub, Repo, int, str]]:
    """The seeded fake GitHub, served, phasegate configured for it as an App, and the project
    in model development: (fake, repo, PR number, PR head sha)."""
    fake, repo, number, head, private = seed(world)
    with serving(fake.app) as base:
        monkeypatch.setenv("PHASEGATE_GITHUB_API_URL", f"{base}/api/v3")
        monkeypatch.setenv("PHASEGATE_GITHUB_APP_ID", "42")
        monkeypatch.setenv("PHASEGATE_GITHUB_PRIVATE_KEY", private)
        runtime.cache_clear()
        world.store.ensure_project("churn-model", "framing", datetime.now(UTC))
        world.store.transition(
            project="churn-model",
            to_phase="model-development",
            kind="advance",
            reason="test setup",
            evaluation_id=None,
            at=datetime.now(UTC),
        )
        yield fake, repo, number, head
    runtime.cache_clear()


def pr_event(
    world: World, delivery: str, number: int, kind: str = "pull_request.synchronize"
) -> None:
    """A pull request event on the project's repository, as the inbox holds it."""
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
