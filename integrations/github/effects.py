"""What to tell GitHub about a decision, as outbox rows: the gate check, the phase label, and
(optionally) a comment on the pull request when its decision changed.

The mapping from a gate's mode and status to what GitHub shows lives here, not in the flows:
``warn`` never blocks (``neutral``), ``shadow`` posts nothing, awaiting approval is
``action_required``. Keys say what a row is about and what it says, so the same decision
queued twice is queued once:

- ``check:<repo>:<head sha>:<gate>:<gate digest>[@<re-run delivery>]:<status>`` -- every
  state of one check shares the prefix up to the gate, which is how an update finds the run
  made before;
- ``label:<project>:<phase>:<when>``;
- ``pr_comment:<repo>#<number>:<gate>:<n>:<status>`` -- the n-th decision announced on that
  PR; the newest such key holds the status the PR was last told.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gates.evidence import Evidence
from gates.lifecycle import Move
from gates.policy import PolicySet
from gates.render import GITHUB_SUMMARY_LIMIT, to_markdown
from gates.result import GateResult
from gates.store import Effect, OutboxRow
from phasegate.settings import Settings

CHECK = "github.check"
PHASE_LABEL = "github.phase_label"
PR_COMMENT = "github.pr_comment"
KINDS = (CHECK, PHASE_LABEL, PR_COMMENT)

CHECK_PREFIX = "phasegate / "
_CONCLUSIONS = {
    "passed": "success",
    "blocked": "failure",
    "awaiting_approval": "action_required",
    "error": "failure",
}
_SAID = {
    "passed": "✅ passed",
    "blocked": "❌ blocked",
    "awaiting_approval": "⏳ awaiting approval",
    "error": "⚠️ could not decide",
}


@dataclass(frozen=True)
class Options:
    """How phasegate talks to GitHub beyond the credentials (see :meth:`of`)."""

    public_url: str | None = None
    pr_comments: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Options:
        return cls(settings.public_url, settings.github_pr_comments)

    def status_url(self, project: str, pull_request: int, gate: str) -> str | None:
        """The status page of ``project``'s pull request at ``gate``, when phasegate's address
        is known: the result the PR's check shows, not the project's or another PR's."""
        if not self.public_url:
            return None
        url = f"{self.public_url.rstrip('/')}/status/{quote(project, safe='')}"
        return f"{url}?pr={pull_request}#{quote(gate, safe='')}"


def conclusion(result: GateResult) -> str | None:
    """The check run's conclusion; None for a ``shadow`` gate, which GitHub never sees."""
    if result.mode == "shadow":
        return None
    if result.blocking or result.status == "passed":
        return _CONCLUSIONS[result.status]
    return "neutral"  # a warn gate reports, and never blocks


def decision(
    policies: PolicySet,
    result: GateResult,
    evidence: Evidence | None,
    move: Move | None,
    options: Options,
    latest: Callable[[str], OutboxRow | None],
    rerun: str | None = None,
) -> Iterator[Effect]:
    """Everything GitHub is told about one decision; ``latest(prefix)`` is the newest
    queued outbox row with that prefix (what the PR was told last,
    :meth:`gates.store.Store.latest_outbox`); ``rerun`` the delivery of the "Re-run" request
    it answers."""
    if effect := check(policies, result, evidence, options, rerun):
        yield effect
        if options.pr_comments and (said := comment(result, evidence, options, latest)):
            yield said
    at = result.evaluated_at.isoformat()
    if move and (label := phase_label(policies, result.project, move.to_phase, at)):
        yield label


def check(
    policies: PolicySet,
    result: GateResult,
    evidence: Evidence | None,
    options: Options,
    rerun: str | None = None,
) -> Effect | None:
    """The gate's check run on the pull request's head commit. A "Re-run" request
    (``rerun``: its delivery id) is part of the key: the person who pressed it sees the check
    posted again even when nothing changed, once per press."""
    pull = evidence.github.pull_request if evidence else None
    repo = evidence.github.repo if evidence else None
    shown = conclusion(result)
    if not (pull and repo and pull.head_sha and shown):
        return None
    github = policies.projects[result.project].github
    folder = (github.path or "").strip("/") if github else ""
    details = options.status_url(result.project, pull.number, result.gate)
    payload: dict[str, Any] = {
        "repo": repo,
        "head_sha": pull.head_sha,
        "name": CHECK_PREFIX + result.gate,
        "conclusion": shown,
        "title": f"{result.title}: {result.summary}"[:255],
        "summary": to_markdown(result, limit=GITHUB_SUMMARY_LIMIT, full_at=details),
        "annotations": [
            {
                # evidence paths are relative to the project's folder; GitHub's to the repo
                "path": f"{folder}/{c.location.path}" if folder else c.location.path,
                "start_line": c.location.line,
                "end_line": c.location.line,
                "annotation_level": "failure" if c.outcome == "failed" else "warning",
                "title": c.title[:255],
                "message": f"expected {c.expected}; found {c.found}"
                + (f"\nfix: {c.hint}" if c.hint else ""),
            }
            for c in result.failing()
            if c.location
        ],
    }
    if details:
        payload["details_url"] = details
    key = (
        f"check:{repo}:{pull.head_sha}:{result.gate}:{result.gate_digest}"
        + (f"@{rerun.replace(':', '-')}" if rerun else "")  # check_prefix splits on ':'
        + f":{result.status}"
    )
    return CHECK, key, payload


def check_prefix(key: str) -> str:
    """What the keys of every state of one check share, ``check:<repo>:<head sha>:<gate>:``
    (repository names and gate ids hold no ``:``; a re-run's delivery has it replaced)."""
    return key.rsplit(":", 2)[0] + ":"


def label_prefix(key: str) -> str:
    """What the keys of every phase label of one project share, ``label:<project>:`` (the
    time at the end of a key holds ``:``, project keys do not)."""
    return ":".join(key.split(":", 2)[:2]) + ":"


def comment_prefix(repo: str, number: int, gate: str) -> str:
    return f"pr_comment:{repo}#{number}:{gate}:"


def comment(
    result: GateResult,
    evidence: Evidence | None,
    options: Options,
    latest: Callable[[str], OutboxRow | None],
) -> Effect | None:
    """A short comment on the PR when its decision for this gate differs from the one it was
    told last (the first decision counts as a change); nothing when it is the same."""
    pull = evidence.github.pull_request if evidence else None
    repo = evidence.github.repo if evidence else None
    if not (pull and repo):
        return None
    prefix = comment_prefix(repo, pull.number, result.gate)
    last = told.idempotency_key if (told := latest(prefix)) else None
    count, _, before = last.removeprefix(prefix).partition(":") if last else ("0", "", "")
    if before == result.status:
        return None
    lines = [
        f"**{CHECK_PREFIX}{result.gate}** ({result.title}): {_SAID[result.status]}"
        + (f" (was {before.replace('_', ' ')})" if before else ""),
        "",
        result.summary,
    ]
    links = [f"[the check]({pull.url}/checks)"] if pull.url else []
    if details := options.status_url(result.project, pull.number, result.gate):
        links.append(f"[the full result]({details})")
    if links:
        lines += ["", "See " + " and ".join(links) + "."]
    key = f"{prefix}{int(count) + 1}:{result.status}"
    return PR_COMMENT, key, {"repo": repo, "number": pull.number, "body": "\n".join(lines)}


def phase_label(policies: PolicySet, project: str, phase: str, at: str) -> Effect | None:
    """The tracking issue's ``phase: <phase>`` label, after any move (advance or regression)."""
    github = policies.projects[project].github
    if not (github and github.tracking_issue):
        return None
    return (
        PHASE_LABEL,
        f"label:{project}:{phase}:{at}",
        {
            "repo": github.repo,
            "issue": github.tracking_issue,
            "phase": phase,
            "phases": [p.id for p in policies.lifecycle.phases],
        },
    )
