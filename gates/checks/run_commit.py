"""``run_commit``: the model was trained from the commit under review.

MLflow records the git commit of a run in the ``mlflow.source.git.commit`` tag; a model
trained from another commit than the PR's head is not the model the PR describes.
"""

from __future__ import annotations

from gates.checks.base import Finding, Params, register
from gates.evidence import Evidence, PathKey


class RunCommit(Params):
    tag: str = "mlflow.source.git.commit"


def _reads(params: RunCommit) -> list[PathKey]:
    return [("mlflow", "run", "tags"), ("github", "pull_request", "head_sha"), ("subject", "ref")]


@register("run_commit", "MLflow run was trained from the gated commit", RunCommit, _reads)
def run(params: RunCommit, evidence: Evidence) -> Finding:
    pr = evidence.github.pull_request
    commit = (pr.head_sha if pr else None) or (evidence.subject.ref if evidence.subject else None)
    expected = (
        f"run tag {params.tag} = {commit[:12]}" if commit else "a commit to compare the run with"
    )
    run_ = evidence.mlflow.run
    if commit is None:
        return Finding(False, expected, "no pull request or ref is being gated")
    if run_ is None:
        return Finding(False, expected, "no run linked to the model version")
    trained = run_.tags.get(params.tag)
    if trained is None:
        return Finding(False, expected, f"run {run_.id} has no {params.tag} tag", source=run_.url)
    ok = commit.startswith(trained) or trained.startswith(commit)
    return Finding(ok, expected, f"run {run_.id} trained from {trained[:12]}", source=run_.url)
