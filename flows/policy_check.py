"""``phasegate / policy``: the check a pull request that edits the policies gets.

The proposed files are validated (every error becomes an annotation at its line) and, when
valid, every project's next decision is computed under both policy sets on fresh evidence:
the summary lists which outcomes the PR would change. Nothing is enforced from a PR.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.runtime import runtime
from gates.evidence import ProjectEvidence, assemble
from gates.loader import load_policies
from gates.render import GITHUB_SUMMARY_LIMIT, cut
from gates.whatif import Change, compare
from integrations.github import effects as github_effects
from integrations.github.evidence import GithubSource
from integrations.github.policies import IncompleteTree, fetch

CHECK_NAME = github_effects.CHECK_PREFIX + "policy"
FULL_LIST = "run `phasegate validate` on the pull request's policy folder"


def _changes(proposed: Any) -> list[Change]:
    rt, now = runtime(), datetime.now(UTC)
    current = rt.policies.current
    changes = []
    for key in sorted(set(current.projects) | set(proposed.projects)):
        config = proposed.projects.get(key) or current.projects[key]
        # Read only: a policy PR must not create project rows (a project it adds has none).
        row = rt.store.project(key)
        phase = row.phase if row else current.lifecycle.initial_phase
        fragments = [source.collect(config, None) for source in rt.sources]
        models = config.mlflow.models if config.mlflow else []
        evidence = assemble(ProjectEvidence(key=key, phase=phase, models=models), fragments)
        change = compare(
            current,
            proposed,
            evidence,
            phase,
            lambda gate, k=key: rt.store.approvals(k, gate),
            lambda gate, k=key: rt.store.waivers(k, gate),
            now,
        )
        if change:
            changes.append(change)
    return changes


def _summary(errors: list[str], changes: list[Change], files: int) -> tuple[str, str, str]:
    """(conclusion, title, summary), the summary within GitHub's limit: 2,000 errors would be
    160,000 characters, which GitHub refuses."""
    if errors:
        conclusion, title = "failure", f"{len(errors)} problem(s) in the proposed policies"
        lines = [f"### ❌ {title}", ""] + [f"- `{e}`" for e in errors]
    else:
        conclusion = "success"
        title = f"valid; {len(changes)} project(s) would decide differently"
        lines = [f"### ✅ The proposed policies are valid ({files} file(s))", ""]
        if changes:
            lines += [
                "| Project | Gate | Now | With this PR | What changes |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {c.project} | {c.gate} | {c.before} | {c.after} | {c.detail} |" for c in changes
            ]
        else:
            lines.append("No project's next decision would change.")
    return conclusion, title, cut("\n".join(lines), GITHUB_SUMMARY_LIMIT, FULL_LIST)


@task(name="check-policy-pr", cache_policy=NO_CACHE)
def check_policy_pull_request(repo: str, number: int) -> dict[str, Any]:
    rt, logger = runtime(), get_run_logger()
    source = next(s for s in rt.sources if isinstance(s, GithubSource))
    pull = source.reader.get(repo, f"/repos/{repo}/pulls/{number}")
    if pull is None:
        return {"checked": False, "why": "pull request not found"}
    folder = rt.settings.github_policy_path.strip("/")
    changed = [
        f["filename"] for f in source.reader.get_all(repo, f"/repos/{repo}/pulls/{number}/files")
    ]
    if not any(path.startswith(folder + "/") for path in changed):
        return {"checked": False, "why": f"does not change {folder}/"}
    head = pull["head"]["sha"]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            files = fetch(source, repo, head, folder, Path(tmp))
        except IncompleteTree as exc:  # a part of the files says nothing about the whole
            files, errors, annotations, changes = [], [str(exc)], [], []
        else:
            loaded = load_policies(tmp)
            errors = [str(e).replace(tmp, folder, 1) for e in loaded.errors]
            annotations = [
                {
                    "path": e.path.replace(tmp, folder, 1),
                    "start_line": e.line,
                    "end_line": e.line,
                    "start_column": e.col,
                    "end_column": e.col,
                    "annotation_level": "failure",
                    "title": "policy error",
                    "message": e.message,
                }
                for e in loaded.errors
                if e.path.startswith(tmp)
            ]
            changes = _changes(loaded.policies) if loaded.policies else []
    conclusion, title, summary = _summary(errors, changes, len(files))
    logger.info("policy PR %s#%s: %s", repo, number, title)
    rt.store.enqueue_outbox(
        idempotency_key=f"check:{repo}:{head}:policy:{sha256(summary.encode()).hexdigest()[:16]}:{conclusion}",
        kind=github_effects.CHECK,
        payload={
            "repo": repo,
            "head_sha": head,
            "name": CHECK_NAME,
            "conclusion": conclusion,
            "title": title,
            "summary": summary,
            "annotations": annotations,
        },
    )
    return {"checked": True, "conclusion": conclusion, "changes": len(changes)}
