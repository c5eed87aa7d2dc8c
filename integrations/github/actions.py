"""What phasegate writes to GitHub: gate checks on pull requests and the phase label.

With a GitHub App a gate is a check run (``phasegate / <gate>``) whose summary is the
engine's Markdown and whose annotations point at failing lines, updated in place when the
gate is evaluated again. With only a token the Checks API is refused, so the same decision
is a commit status. Rate limits and outages come back as :class:`RetryLater` with the wait
GitHub asked for; a request GitHub will never accept is :class:`Permanent`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
from github import GithubException

from integrations.actions import Permanent, RetryLater
from integrations.github.client import GithubAccess

ANNOTATIONS_PER_REQUEST = 50  # GitHub's documented limit for one check-run request
PHASE_LABEL_PREFIX = "phase: "
STATUS_STATES = {
    "success": "success",
    "neutral": "success",
    "failure": "failure",
    "action_required": "pending",
}


def send(
    access: GithubAccess,
    repo: str,
    verb: str,
    path: str,
    body: dict[str, Any] | None,
    parameters: dict[str, Any] | None = None,
) -> Any:
    try:
        _, data = access.client(repo, retry=False).requester.requestJsonAndCheck(
            verb, path, parameters=parameters, input=body
        )
        return data
    except requests.RequestException as exc:  # connection refused, timeouts
        raise RetryLater(f"{verb} {path}: {exc}") from None
    except GithubException as exc:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        message = f"{verb} {path}: {exc.status} {(exc.data or {}).get('message', '') if isinstance(exc.data, dict) else ''}"
        if exc.status in (403, 429) and (
            headers.get("retry-after") or headers.get("x-ratelimit-remaining") == "0"
        ):
            raise RetryLater(message, _wait(headers)) from None
        if exc.status >= 500:
            raise RetryLater(message) from None
        raise Permanent(message) from None


def _wait(headers: dict[str, str]) -> float | None:
    if headers.get("retry-after", "").isdigit():
        return float(headers["retry-after"])
    if headers.get("x-ratelimit-reset", "").isdigit():
        return max(1.0, float(headers["x-ratelimit-reset"]) - time.time())
    return None


class GateCheck:
    """Outbox handler for ``github.check``."""

    def __init__(self, access: GithubAccess, earlier: Callable[[str], str | None]) -> None:
        self.access = access
        self.earlier = earlier  # key prefix -> id of the check run made for it before

    def __call__(self, key: str, payload: dict[str, Any], external_id: str | None) -> str | None:
        repo, sha = payload["repo"], payload["head_sha"]
        if self.access.mode == "token":
            state = STATUS_STATES.get(payload["conclusion"], "failure")
            body = {
                "state": state,
                "context": payload["name"],
                "description": payload["title"][:140],
            }
            if payload.get("details_url"):
                body["target_url"] = payload["details_url"]
            made = send(self.access, repo, "POST", f"/repos/{repo}/statuses/{sha}", body)
            return f"status:{made.get('id')}"
        annotations = payload.get("annotations", [])
        output = {"title": payload["title"], "summary": payload["summary"]}
        run = {
            "name": payload["name"],
            "head_sha": sha,
            "status": "completed",
            "conclusion": payload["conclusion"],
        }
        if payload.get("details_url"):
            run["details_url"] = payload["details_url"]
        run_id = (
            external_id
            or self.earlier(key.rsplit(":", 2)[0] + ":")
            or self._made_unrecorded(repo, sha, payload["name"])
        )
        first = {**run, "output": {**output, "annotations": annotations[:ANNOTATIONS_PER_REQUEST]}}
        if run_id:
            send(self.access, repo, "PATCH", f"/repos/{repo}/check-runs/{run_id}", first)
        else:
            run_id = str(send(self.access, repo, "POST", f"/repos/{repo}/check-runs", first)["id"])
        for start in range(ANNOTATIONS_PER_REQUEST, len(annotations), ANNOTATIONS_PER_REQUEST):
            more = {
                "output": {
                    **output,
                    "annotations": annotations[start : start + ANNOTATIONS_PER_REQUEST],
                }
            }
            send(self.access, repo, "PATCH", f"/repos/{repo}/check-runs/{run_id}", more)
        return run_id

    def _made_unrecorded(self, repo: str, sha: str, name: str) -> str | None:
        """The check run an attempt that died made: GitHub created it, the process was
        killed before the outbox recorded its id. Found on GitHub by name (one read per new
        check run), it is updated instead of being made a second time."""
        found = send(
            self.access,
            repo,
            "GET",
            f"/repos/{repo}/commits/{sha}/check-runs",
            None,
            {"check_name": name, "filter": "latest", "app_id": self.access.config.app_id},
        )
        runs = (found or {}).get("check_runs") or []
        return str(runs[0]["id"]) if runs else None


class PhaseLabel:
    """Outbox handler for ``github.phase_label``: the tracking issue shows the phase."""

    def __init__(self, access: GithubAccess) -> None:
        self.access = access

    def __call__(self, key: str, payload: dict[str, Any], external_id: str | None) -> str | None:
        repo, issue = payload["repo"], payload["issue"]
        wanted = PHASE_LABEL_PREFIX + payload["phase"]
        current = send(self.access, repo, "GET", f"/repos/{repo}/issues/{issue}/labels", None) or []
        for label in current:
            name = label["name"]
            if name.startswith(PHASE_LABEL_PREFIX) and name != wanted:
                send(
                    self.access, repo, "DELETE", f"/repos/{repo}/issues/{issue}/labels/{name}", None
                )
        if wanted not in {label["name"] for label in current}:
            send(
                self.access,
                repo,
                "POST",
                f"/repos/{repo}/issues/{issue}/labels",
                {"labels": [wanted]},
            )
        return wanted
