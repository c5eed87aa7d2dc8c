"""GitHub webhook deliveries as phasegate events, and which of them phasegate acts on.

The event name comes from ``X-GitHub-Event`` and the action from the body; the repository's
``full_name`` routes it to a project. Deliveries about pull requests (the PR itself, its
reviews, check runs and suites and commit statuses on its head) carry the PR's number, so
the decision is made for that PR and shown on it; several PRs in one check suite become one
event each.

Every event type is handled explicitly (:func:`ignored`): each costs a full evaluation when
acted on, so deliveries that cannot change what a gate reads — a ``ping``, a push to another
branch or a tag, phasegate's own check runs completing, a comment — are finished at once,
with the reason shown by ``phasegate events``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from gates.events import Event

OWN_CHECKS = "phasegate /"
"""Names of the checks and statuses phasegate itself posts (``phasegate / <gate>``)."""

ACTED_ON: dict[str, frozenset[str]] = {
    "pull_request": frozenset(
        {
            "opened",
            "synchronize",
            "reopened",
            "ready_for_review",
            "converted_to_draft",
            "labeled",
            "unlabeled",
            "edited",
            "closed",
        }
    ),
    "pull_request_review": frozenset({"submitted", "edited", "dismissed"}),
    "issues": frozenset(
        {
            "opened",
            "edited",
            "labeled",
            "unlabeled",
            "closed",
            "reopened",
            "deleted",
            "transferred",
        }
    ),
    "check_run": frozenset({"completed", "rerequested", "requested_action"}),
    "check_suite": frozenset({"completed", "rerequested"}),
}
"""Actions that change evidence (or ask for a new decision), per event with actions."""

RERUN = frozenset({"check_run.rerequested", "check_suite.rerequested"})
"""Someone pressed "Re-run": the check must be posted again even if nothing changed."""

NOT_EVIDENCE = {
    "issue_comment": "comments are not evidence any gate reads",
    "pull_request_review_comment": "review comments are not evidence any gate reads",
    "pull_request_review_thread": "review threads are not evidence any gate reads",
    "workflow_run": "CI results arrive as check runs and suites",
    "workflow_job": "CI results arrive as check runs and suites",
    "label": "a repository's labels are not evidence; labels on issues and PRs are",
    "installation_repositories": "the repositories of an installation are read when needed",
}


def kind(event_name: str, body: dict[str, Any]) -> str:
    action = body.get("action")
    return f"{event_name}.{action}" if isinstance(action, str) else event_name


def _own(app: Any, name: Any, app_id: str | None) -> bool:
    by_app = isinstance(app, dict) and app_id is not None and str(app.get("id")) == str(app_id)
    return by_app or (isinstance(name, str) and name.startswith(OWN_CHECKS))


def ignored(event_name: str, body: dict[str, Any], app_id: str | None = None) -> str | None:
    """Why phasegate does nothing with this delivery, or None when it acts on it.

    ``app_id``: phasegate's GitHub App, whose own check runs and suites are not evidence (a
    completed ``phasegate / …`` check would re-evaluate the gate that posted it, forever).
    A re-run request on them is acted on: that is someone asking for a new decision.
    """
    action = body.get("action")
    what = kind(event_name, body)
    if event_name == "ping":
        return "ping (webhook configured)"
    if event_name == "push":
        return _push_ignored(body)
    if event_name == "status":
        if _own(None, body.get("context"), app_id):
            return f"phasegate's own commit status '{body.get('context')}' is not evidence"
        return None
    if event_name in ("check_run", "check_suite"):
        item = body.get(event_name) or {}
        name = item.get("name") if event_name == "check_run" else None
        if what not in RERUN and _own(item.get("app"), name, app_id):
            label = f"'{name}'" if name else f"of App {(item.get('app') or {}).get('id')}"
            return (
                f"phasegate's own {event_name.replace('_', ' ')} {label} ({action}) is not evidence"
            )
        if event_name == "check_suite" and action == "requested":
            return "check_suite.requested: the pull_request event of the same push is evaluated"
    if event_name in ACTED_ON:
        if action in ACTED_ON[event_name]:
            return None
        return f"{what} does not change what any gate reads"
    if event_name in NOT_EVIDENCE:
        return f"{what}: {NOT_EVIDENCE[event_name]}"
    return f"phasegate does not act on GitHub '{event_name}' events"


def _push_ignored(body: dict[str, Any]) -> str | None:
    ref = str(body.get("ref") or "")
    default = (body.get("repository") or {}).get("default_branch")
    if ref.startswith("refs/tags/"):
        return f"push of tag {ref.removeprefix('refs/tags/')}: gates read branches, not tags"
    branch = ref.removeprefix("refs/heads/")
    if body.get("deleted"):
        return f"push deleting branch {branch}"
    if not ref.startswith("refs/heads/") or branch != default:
        return (
            f"push to {branch or ref or 'an unnamed ref'}, not the default branch "
            f"{default or '(unknown)'}: pull request events cover other branches"
        )
    return None


def pushed_paths(body: dict[str, Any]) -> set[str] | None:
    """The paths a push added, modified or removed; None when the payload cannot tell (a
    forced push, or more commits than the payload lists)."""
    commits = body.get("commits")
    if body.get("forced") or not isinstance(commits, list) or len(commits) >= 2048:
        return None
    return {
        path
        for commit in commits
        if isinstance(commit, dict)
        for name in ("added", "modified", "removed")
        for path in commit.get(name) or []
    }


def pull_requests(body: dict[str, Any]) -> list[int]:
    """The pull requests a delivery names (none for issues, pushes, installations; none for
    check runs and suites of fork PRs, which GitHub leaves out: see :func:`head_sha`)."""
    if isinstance(body.get("pull_request"), dict) and body["pull_request"].get("number"):
        return [int(body["pull_request"]["number"])]
    issue = body.get("issue")
    if isinstance(issue, dict) and issue.get("pull_request") and issue.get("number"):
        return [int(issue["number"])]
    for holder in ("check_run", "check_suite"):
        if isinstance(body.get(holder), dict):
            found = body[holder].get("pull_requests") or []
            return sorted(
                {int(p["number"]) for p in found if isinstance(p, dict) and p.get("number")}
            )
    return []


def head_sha(event_name: str, body: dict[str, Any]) -> str | None:
    """The commit a check run, check suite or commit status is about: what to ask GitHub for
    the pull requests of when the delivery names none."""
    if event_name in ("check_run", "check_suite"):
        sha = (body.get(event_name) or {}).get("head_sha")
    elif event_name == "status":
        sha = body.get("sha")
    else:
        return None
    return sha if isinstance(sha, str) and sha else None


def normalise(
    event_name: str, body: dict[str, Any], received_at: datetime, delivery_id: str | None = None
) -> list[Event]:
    """The delivery as events; a re-run request carries its delivery id in
    ``subject["rerun"]``, so that the check it asks for is posted again (once per request)."""
    repo = (body.get("repository") or {}).get("full_name")
    subject = {"repo": repo} if isinstance(repo, str) else {}
    if kind(event_name, body) in RERUN and delivery_id:
        subject["rerun"] = delivery_id
    item = body.get("pull_request") or body.get("issue") or {}
    labels = {
        lbl["name"]: "true"
        for lbl in (item.get("labels") or [] if isinstance(item, dict) else [])
        if isinstance(lbl, dict) and isinstance(lbl.get("name"), str)
    }
    base = {
        "source": "github",
        "kind": kind(event_name, body),
        "labels": labels,
        "occurred_at": received_at.astimezone(UTC),
        "payload": body,
    }
    pulls = pull_requests(body)
    if not pulls:
        return [Event(subject=subject, **base)]
    return [Event(subject={**subject, "pull_request": str(number)}, **base) for number in pulls]


def tie_to_pulls(
    event_name: str, events: list[Event], find: Callable[[str, str], list[dict[str, Any]]]
) -> list[Event]:
    """Check runs, suites and statuses GitHub sent without their pull requests (a fork PR's,
    or a status, which never names one) become events on the open PRs whose head is that
    commit; ``find(repo, sha)`` asks GitHub (``GET /repos/{repo}/commits/{sha}/pulls``).

    The pull request GitHub answered with rides along in the event's payload, so evidence
    collection need not ask for it again. A commit that heads no open PR stays one
    project-wide event.
    """
    tied: list[Event] = []
    for event in events:
        sha = head_sha(event_name, event.payload)
        repo = event.subject.get("repo")
        if "pull_request" in event.subject or not sha or not repo:
            tied.append(event)
            continue
        pulls = [
            p
            for p in find(repo, sha)
            if p.get("state") == "open" and (p.get("head") or {}).get("sha") == sha
        ]
        if not pulls:
            tied.append(event)
        for pull in pulls:
            payload = {**event.payload, "pull_request": pull}
            subject = {**event.subject, "pull_request": str(pull["number"])}
            tied.append(event.model_copy(update={"subject": subject, "payload": payload}))
    return tied


def _full(pull: Any) -> bool:
    """Whether a payload's pull request object is the whole thing (a check run lists only
    number, head and base of its PRs)."""
    return (
        isinstance(pull, dict)
        and isinstance(pull.get("head"), dict)
        and bool(pull["head"].get("sha"))
        and isinstance(pull.get("base"), dict)
        and isinstance(pull.get("labels"), list)
        and isinstance(pull.get("user"), dict)
    )


def _about(event: Event, repo: str) -> bool:
    return event.source == "github" and event.subject.get("repo", "").lower() == repo.lower()


def known_pull(events: Sequence[Event], repo: str, number: int) -> dict[str, Any] | None:
    """The newest complete pull request object the triggering deliveries carried for
    ``repo#number``: GitHub signed it, and it is as fresh as the event being handled."""
    for event in sorted(events, key=lambda e: e.occurred_at, reverse=True):
        pull = event.payload.get("pull_request")
        if _about(event, repo) and _full(pull) and pull.get("number") == number:
            return pull
    return None


def known_repository(events: Sequence[Event], repo: str) -> dict[str, Any] | None:
    """The repository as the newest delivery about it describes it (web URL, default
    branch), or None."""
    for event in sorted(events, key=lambda e: e.occurred_at, reverse=True):
        info = event.payload.get("repository")
        if _about(event, repo) and isinstance(info, dict) and info.get("default_branch"):
            return info
    return None
