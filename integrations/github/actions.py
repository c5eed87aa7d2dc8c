"""What phasegate writes to GitHub: gate checks, the phase label, decision comments.

With a GitHub App a gate is a check run (``phasegate / <gate>``) whose summary is the
engine's Markdown and whose annotations point at failing lines. With only a token the Checks
API is refused, so the same decision is a commit status. Rate limits and outages come back
as :class:`RetryLater` with the wait GitHub asked for; a request GitHub will never accept is
:class:`Permanent`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import requests
from github import GithubException

from gates.store import Store
from integrations.actions import Permanent, RetryLater, newest_state
from integrations.github import effects
from integrations.github.client import GithubAccess, GithubUnavailable

log = logging.getLogger("phasegate.github")

ANNOTATIONS_PER_REQUEST = 50  # GitHub's documented limit for one check-run request
PER_PAGE = 100  # the most GitHub lists in one page (its default is 30)
MAX_PAGES = 100
SECONDARY_WAIT_S = 60.0  # GitHub: without Retry-After, wait at least a minute
PHASE_LABEL_PREFIX = "phase: "
STATUS_STATES = {
    "success": "success",
    "neutral": "success",
    "failure": "failure",
    "action_required": "pending",
}


class AlreadyExists(Permanent):
    """GitHub's 422 ``already_exists``: what was to be made is there (a label)."""


class NotFound(Permanent):
    """GitHub's 404: no such thing (or not visible with these credentials)."""


def send(
    access: GithubAccess,
    repo: str,
    verb: str,
    path: str,
    body: dict[str, Any] | None,
    params: dict[str, Any] | None = None,
) -> Any:
    """One write (or a read from a side effect), without in-process retries; an installation
    token GitHub refuses (401: revoked, or expired early) is renewed once."""
    try:
        return _send(access, repo, verb, path, body, params)
    except GithubException as exc:
        if exc.status != 401 or not access.reauthenticate(repo):
            raise refusal(verb, path, exc) from None
    try:
        return _send(access, repo, verb, path, body, params)
    except GithubException as exc:
        raise refusal(verb, path, exc) from None


def _send(
    access: GithubAccess,
    repo: str,
    verb: str,
    path: str,
    body: dict[str, Any] | None,
    params: dict[str, Any] | None,
) -> Any:
    try:
        requester = access.client(repo, retry=False).requester
        _, data = requester.requestJsonAndCheck(verb, path, parameters=params, input=body)
        return data
    except GithubUnavailable as exc:  # the App's installation could not be looked up
        raise RetryLater(str(exc)) from None
    except requests.RequestException as exc:  # connection refused, timeouts
        raise RetryLater(f"{verb} {path}: {exc}") from None


def send_all(access: GithubAccess, repo: str, path: str) -> list[Any]:
    """Every item of a list GitHub pages: by default it shows 30, so a repository's 41st
    label would look missing."""
    items: list[Any] = []
    for page in range(1, MAX_PAGES + 1):
        chunk = send(access, repo, "GET", path, None, {"per_page": PER_PAGE, "page": page}) or []
        items += chunk
        if len(chunk) < PER_PAGE:
            break
    return items


def refusal(verb: str, path: str, exc: GithubException) -> Exception:
    """What a refused request means for the outbox: retry later (rate limits, 5xx) or not."""
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message", ""))
    text = f"{verb} {path}: {exc.status} {message}".rstrip()
    limited = exc.status == 429 or (
        exc.status == 403
        and (
            "rate limit" in message.lower()
            or "retry-after" in headers
            or headers.get("x-ratelimit-remaining") == "0"
        )
    )
    if limited:
        return RetryLater(text, _wait(headers))
    if exc.status >= 500:
        return RetryLater(text)
    if exc.status == 404:
        return NotFound(text)
    codes = {e.get("code") for e in data.get("errors", []) if isinstance(e, dict)}
    if exc.status == 422 and codes == {"already_exists"}:
        return AlreadyExists(text)
    return Permanent(text)


def _wait(headers: dict[str, str]) -> float:
    """``Retry-After`` when GitHub says it; the reset when the primary limit is spent; else
    the minute GitHub asks for after a secondary limit."""
    if headers.get("retry-after", "").isdigit():
        return float(headers["retry-after"])
    if (
        headers.get("x-ratelimit-remaining") == "0"
        and headers.get("x-ratelimit-reset", "").isdigit()
    ):
        return max(1.0, float(headers["x-ratelimit-reset"]) - time.time())
    return SECONDARY_WAIT_S


def _digest(annotations: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(annotations, sort_keys=True).encode()).hexdigest()[:16]


class GateCheck:
    """Outbox handler for ``github.check``.

    GitHub *appends* the annotations of every update to a check run, so an update in place
    can only ever add failure marks, never take a stale one away. The run made for a check is
    remembered as ``<run id>@<digest of its annotations>``: while the annotations stay the
    same the run is updated in place (without annotations); when they change, a new run of
    the same name is made on the head commit -- GitHub shows the newest run of a name, and
    branch protection goes by it.

    Every state of one check (same key prefix, :func:`effects.check_prefix`) is given the
    newest state queued for it (:func:`newest_state`), so a state held back by an outage
    never turns a passing check back into a failing one. A run made by this handler carries
    ``<outbox key>@<digest>`` as its ``external_id``: a retry finds the run an earlier attempt
    at the same row made (GitHub created it, the outbox never recorded it) and goes on from
    the annotations GitHub says it already has.
    """

    def __init__(self, access: GithubAccess, store: Store) -> None:
        self.access = access
        self.store = store

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        prefix = effects.check_prefix(key)
        newest = newest_state(self.store.latest_outbox, prefix, key, payload)
        if newest is None:
            return external_id or self.store.outbox_external_id(prefix)
        payload = newest
        repo, sha = payload["repo"], payload["head_sha"]
        if self.access.mode == "token":
            return self._status(repo, sha, payload)
        annotations = payload.get("annotations", [])
        digest = _digest(annotations)
        output = {"title": payload["title"], "summary": payload["summary"]}
        run = {
            "name": payload["name"],
            "head_sha": sha,
            "status": "completed",
            "conclusion": payload["conclusion"],
        }
        if payload.get("details_url"):
            run["details_url"] = payload["details_url"]
        run_id, shown = self._target(key, prefix, repo, run, digest, external_id, retried)
        shown = len(annotations) if shown is None else shown
        batch = annotations[shown : shown + ANNOTATIONS_PER_REQUEST]
        first = {**output, **({"annotations": batch} if batch else {})}
        if run_id is None:
            made = {**run, "external_id": f"{key}@{digest}", "output": first}
            run_id = str(send(self.access, repo, "POST", f"/repos/{repo}/check-runs", made)["id"])
        else:
            path = f"/repos/{repo}/check-runs/{run_id}"
            send(self.access, repo, "PATCH", path, {**run, "output": first})
        shown += len(batch)
        for start in range(shown, len(annotations), ANNOTATIONS_PER_REQUEST):
            batch = annotations[start : start + ANNOTATIONS_PER_REQUEST]
            more = {"output": {**output, "annotations": batch}}
            send(self.access, repo, "PATCH", f"/repos/{repo}/check-runs/{run_id}", more)
        return f"{run_id}@{digest}"

    def _target(
        self,
        key: str,
        prefix: str,
        repo: str,
        run: dict[str, Any],
        digest: str,
        external_id: str | None,
        retried: bool,
    ) -> tuple[str | None, int | None]:
        """The run to write this state to (None: make a new one) and how many of the
        state's annotations (``digest``) it already has (None: all of them).

        This row's own run comes first: the one it recorded, else -- on a retry -- the one an
        earlier attempt made without recording it. That run is the newest of the name, so if
        its annotations are not this state's, only a new run can show this state's; updating
        an older one in place would leave GitHub showing the wrong one. Otherwise the run an
        earlier row of the check made is updated in place while its annotations are the same.
        """
        if external_id:
            run_id, _, made = external_id.partition("@")
            return (run_id, None) if made == digest else (None, 0)
        if retried and (mine := self._made_unrecorded(key, repo, run)) is not None:
            run_id, made, count = mine
            return (run_id, count) if made == digest else (None, 0)
        run_id, _, made = (self.store.outbox_external_id(prefix) or "").partition("@")
        return (run_id, None) if run_id and made == digest else (None, 0)

    def _made_unrecorded(
        self, key: str, repo: str, run: dict[str, Any]
    ) -> tuple[str, str, int] | None:
        """The newest check run an earlier attempt at this very row made, as (id, digest of
        the annotations it was made for, how many annotations GitHub holds for it): GitHub
        created it, and the attempt died or was refused a later request (the second page
        of annotations) before the outbox recorded its id. Found by its ``external_id``
        (one read, on a retry only)."""
        found = send(
            self.access,
            repo,
            "GET",
            f"/repos/{repo}/commits/{run['head_sha']}/check-runs",
            None,
            {
                "check_name": run["name"],
                "filter": "all",
                "app_id": self.access.config.app_id,
                "per_page": PER_PAGE,
            },
        )
        mine = [
            r
            for r in (found or {}).get("check_runs") or []
            if str(r.get("external_id") or "").rpartition("@")[0] == key
        ]
        if not mine:
            return None
        newest = max(mine, key=lambda r: int(r["id"]))
        count = int((newest.get("output") or {}).get("annotations_count") or 0)
        return str(newest["id"]), str(newest["external_id"]).rpartition("@")[2], count

    def _status(self, repo: str, sha: str, payload: dict[str, Any]) -> str:
        body = {
            "state": STATUS_STATES.get(payload["conclusion"], "failure"),
            "context": payload["name"],
            "description": payload["title"][:140],
        }
        if payload.get("details_url"):
            body["target_url"] = payload["details_url"]
        made = send(self.access, repo, "POST", f"/repos/{repo}/statuses/{sha}", body)
        return f"status:{made.get('id')}"


class PhaseLabel:
    """Outbox handler for ``github.phase_label``: the tracking issue shows the phase.

    The label rows of one project (:func:`effects.label_prefix`) all set the same label, so
    a row performed late -- held back by a rate limit -- sets the newest phase queued, or
    nothing once that has been set (:func:`newest_state`)."""

    def __init__(self, access: GithubAccess, store: Store) -> None:
        self.access = access
        self.store = store

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        prefix = effects.label_prefix(key)
        newest = newest_state(self.store.latest_outbox, prefix, key, payload)
        if newest is None:
            return external_id or self.store.outbox_external_id(prefix)
        payload = newest
        repo, issue = payload["repo"], payload["issue"]
        wanted = PHASE_LABEL_PREFIX + payload["phase"]
        current = [
            label["name"]
            for label in send_all(self.access, repo, f"/repos/{repo}/issues/{issue}/labels")
        ]
        for name in current:
            if name.startswith(PHASE_LABEL_PREFIX) and name != wanted:
                path = f"/repos/{repo}/issues/{issue}/labels/{quote(name, safe='')}"
                try:
                    send(self.access, repo, "DELETE", path, None)
                except NotFound:  # taken off by hand since the list was read: as good as done
                    log.info("%s#%s: label %r was already removed", repo, issue, name)
        if wanted not in current:
            path = f"/repos/{repo}/issues/{issue}/labels"
            send(self.access, repo, "POST", path, {"labels": [wanted]})
        return wanted


class PullRequestComment:
    """Outbox handler for ``github.pr_comment``: a decision that changed, said on the PR.

    The comment carries its outbox key in an HTML comment, so a retry after an attempt that
    may have posted it (a crash between posting and recording) finds the comment instead of
    posting it twice. Only a retry looks: a first attempt cannot have posted, and reading
    every comment of a long PR before each post would cost a page of requests per decision.
    """

    def __init__(self, access: GithubAccess) -> None:
        self.access = access

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        if external_id:
            return external_id
        repo, number = payload["repo"], payload["number"]
        marker = f"<!-- phasegate:{key} -->"
        path = f"/repos/{repo}/issues/{number}/comments"
        if retried:
            for comment in send_all(self.access, repo, path):
                if marker in (comment.get("body") or ""):
                    return str(comment["id"])
        made = send(self.access, repo, "POST", path, {"body": f"{payload['body']}\n\n{marker}"})
        return str(made["id"])
