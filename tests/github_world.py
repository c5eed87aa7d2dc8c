"""A fake GitHub holding the example project (repository, DSLP issues, a model PR), shared
by the GitHub tests and bench/github_requests.py."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gates.scenario import load_scenario
from tests.fake_github import FakeGitHub, Repo
from tests.paths import EXAMPLES, POLICIES
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
