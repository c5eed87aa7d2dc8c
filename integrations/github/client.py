"""Talking to GitHub: authentication, throttling, and requests that spend the rate limit wisely.

Authentication is a GitHub App (installation tokens, refreshed by PyGithub) or, as a
fallback, a personal access token — with which the Checks API is refused, so decisions are
shown as commit statuses instead. Reads go through :class:`Reader`, which sends
``If-None-Match`` with the last ETag of every URL (a 304 costs no rate limit) and keeps
content-addressed data (trees and blobs by SHA) forever.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import requests
from github import Auth, Github, GithubException, GithubIntegration, GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait

log = logging.getLogger("phasegate.github")

Mode = Literal["app", "token"]


class GithubUnavailable(RuntimeError):
    """GitHub could not be asked (down, rate-limited past retries, no credentials)."""


@dataclass(frozen=True)
class GithubConfig:
    api_url: str
    app_id: str | None = None
    private_key: str | None = None
    token: str | None = None

    @property
    def mode(self) -> Mode | None:
        if self.app_id and self.private_key:
            return "app"
        return "token" if self.token else None

    @staticmethod
    def load_key(value: str) -> str:
        """A PEM, or the path of a file holding one."""
        if "BEGIN" in value:
            return value
        return Path(value).expanduser().read_text()


READ_WAIT_S = 10.0
"""The longest a read waits for GitHub's rate limits; past that the evidence says GitHub was
unavailable (the checks are ``error``) and the next ``reconcile`` evaluates again."""


class _ShortWaits(GithubRetry):
    """PyGithub's retry, but never sleeping longer than ``max_rate_limit_wait``.

    ``GithubRetry`` caps the waits it computes itself (primary reset, secondary limit), but
    urllib3 sleeps whatever ``Retry-After`` says: a 120 s secondary limit held a read -- and
    the Prefect worker running it -- for 120 s.
    """

    def sleep_for_retry(self, response: Any) -> bool:
        wait = self.get_retry_after(response)
        if wait and self.max_rate_limit_wait is not None and wait > self.max_rate_limit_wait:
            raise RateLimitExceededExceedsMaxWait(
                response.status, None, dict(response.headers), wait=wait
            )
        return super().sleep_for_retry(response)


def _requester_settings(*, retry: bool) -> dict[str, Any]:
    """How every PyGithub client here talks to GitHub (the setup integration included).

    PyGithub waits 0.25 s before every request and 1 s before every write by default: that
    alone would make a decision seconds late. GitHub asks integrators to avoid bursts of
    writes, so writes keep a short spacing.

    Reads retry a little (5xx, rate limits that clear within :data:`READ_WAIT_S`) and give up
    on longer waits -- a secondary limit without ``Retry-After`` asks for at least a minute,
    so it is never waited for here. Writes do not retry in-process at all: the outbox waits
    for ``Retry-After`` between attempts, without holding a worker.
    """
    policy = (
        _ShortWaits(total=3, secondary_rate_wait=60, max_rate_limit_wait=READ_WAIT_S)
        if retry
        else None
    )
    return {
        "retry": policy,
        "timeout": 15,
        "seconds_between_requests": None,
        "seconds_between_writes": 0.1,
    }


def _client(auth: Auth.Auth, api_url: str, *, retry: bool) -> Github:
    return Github(auth=auth, base_url=api_url, per_page=100, **_requester_settings(retry=retry))


class GithubAccess:
    """Clients per repository, made once: an App needs the repository's installation."""

    def __init__(self, config: GithubConfig) -> None:
        if config.mode is None:
            raise GithubUnavailable(
                "no GitHub credentials: set PHASEGATE_GITHUB_APP_ID and PHASEGATE_GITHUB_PRIVATE_KEY "
                "(a GitHub App) or PHASEGATE_GITHUB_TOKEN"
            )
        self.config = config
        self.mode: Mode = config.mode
        self._auth: dict[str, Auth.Auth] = {}
        self._installations: dict[str, int] = {}
        self._clients: dict[tuple[str, bool], Github] = {}
        self._lock = threading.Lock()

    def client(self, repo: str, *, retry: bool = True) -> Github:
        """A client for reading (with retries) or, ``retry=False``, for writing."""
        with self._lock:
            if repo not in self._auth:
                self._auth[repo] = self._connect(repo)
            if (repo, retry) not in self._clients:
                self._clients[(repo, retry)] = _client(
                    self._auth[repo], self.config.api_url, retry=retry
                )
            return self._clients[(repo, retry)]

    def forget(self, account: str) -> list[str]:
        """Drop the credentials and clients kept for ``account``'s repositories, so the next
        request asks GitHub for the installation again: after the App was uninstalled,
        suspended or granted new permissions, a kept token is wrong. Returns the repositories
        dropped."""
        owner = account.lower()
        with self._lock:
            kept = self._auth.keys() | self._installations.keys()
            dropped = sorted(r for r in kept if r.split("/", 1)[0].lower() == owner)
            for repo in dropped:
                self._auth.pop(repo, None)
                self._installations.pop(repo, None)  # the installation itself may be gone
            for key in [k for k in self._clients if k[0] in dropped]:
                del self._clients[key]
        return dropped

    def reauthenticate(self, repo: str) -> bool:
        """Forget ``repo``'s installation token after GitHub refused it (401: revoked, or
        expired before PyGithub's clock said so); the next :meth:`client` asks for a new one.
        False when that cannot help (a personal access token is what it is)."""
        if self.mode != "app":
            return False
        with self._lock:
            self._auth.pop(repo, None)
            for key in [key for key in self._clients if key[0] == repo]:
                del self._clients[key]
        log.info("GitHub refused the installation token for %s; asking for a new one", repo)
        return True

    def _connect(self, repo: str) -> Auth.Auth:
        if self.mode == "token":
            assert self.config.token
            return Auth.Token(self.config.token)
        assert self.config.app_id and self.config.private_key
        app = Auth.AppAuth(self.config.app_id, GithubConfig.load_key(self.config.private_key))
        if repo not in self._installations:
            self._installations[repo] = self._installation(app, repo)
        return app.get_installation_auth(self._installations[repo])

    def _installation(self, app: Auth.AppAuth, repo: str) -> int:
        owner, name = repo.split("/", 1)
        integration = GithubIntegration(
            auth=app, base_url=self.config.api_url, **_requester_settings(retry=True)
        )
        try:
            return integration.get_repo_installation(owner, name).id
        except GithubException as exc:
            if exc.status == 404:
                raise GithubUnavailable(
                    f"the GitHub App {self.config.app_id} is not installed on {repo}: install it "
                    "on the repository (or its organisation)"
                ) from None
            detail = exc.data.get("message", "") if isinstance(exc.data, dict) else ""
            raise GithubUnavailable(
                f"could not look up the GitHub App's installation on {repo}: {exc.status} {detail}"
            ) from None
        except requests.RequestException as exc:
            raise GithubUnavailable(f"GitHub could not be reached for {repo}: {exc}") from None


@dataclass
class Reader:
    """Conditional GETs with a bounded ETag cache, shared across evaluations.

    ``requests`` counts what was actually sent and ``spent`` what cost rate limit (not the
    304s) — the figures the benchmark reports.
    """

    access: GithubAccess
    capacity: int = 4096
    requests: int = 0
    spent: int = 0
    _etags: OrderedDict[str, tuple[str, Any]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, repo: str, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` (relative to the API root) for ``repo``; 404 → None."""
        key = path + ("?" + json.dumps(params, sort_keys=True) if params else "")
        with self._lock:
            cached = self._etags.get(key)
        headers = {"If-None-Match": cached[0]} if cached else {}
        status, response_headers, body = self._send(repo, path, params, headers)
        if status == 401 and self.access.reauthenticate(repo):
            status, response_headers, body = self._send(repo, path, params, headers)
        with self._lock:
            if status == 304 and cached:
                self._etags.move_to_end(key)
                return cached[1]
            self.spent += 1
        if status == 404:
            return None
        if status >= 400:
            message = _message(body)
            raise GithubUnavailable(f"GET {path}: {status} {message}")
        data = json.loads(body) if body else None
        etag = response_headers.get("etag") or response_headers.get("ETag")
        if etag:
            with self._lock:
                self._etags[key] = (etag, data)
                self._etags.move_to_end(key)
                while len(self._etags) > self.capacity:
                    self._etags.popitem(last=False)
        return data

    def _send(
        self, repo: str, path: str, params: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], str]:
        requester = self.access.client(repo).requester
        try:
            answer = requester.requestJson("GET", path, params, headers)
        except RateLimitExceededExceedsMaxWait as exc:
            raise GithubUnavailable(
                f"GET {path}: GitHub's rate limit asks for a wait of {exc.wait or 0:.0f} s, longer "
                f"than an evaluation waits ({READ_WAIT_S:.0f} s); the next reconcile tries again"
            ) from None
        except Exception as exc:  # connection errors after PyGithub's retries
            raise GithubUnavailable(f"GET {path}: {exc}") from None
        with self._lock:
            self.requests += 1
        return answer

    def get_all(
        self, repo: str, path: str, params: dict[str, Any] | None = None, *, key: str | None = None
    ) -> list[Any]:
        """A paginated list, page by page (each page conditionally); ``key`` names the list in
        responses that wrap it (``check_runs``, ``statuses``)."""
        items: list[Any] = []
        for page in range(1, 11):
            answer = self.get(repo, path, {**(params or {}), "per_page": 100, "page": page})
            chunk = (answer or {}).get(key, []) if key else (answer or [])
            items += chunk
            if len(chunk) < 100:
                break
        return items


class Visit:
    """One evaluation's reads: every resource asked for once, however many gates read it.

    The ETag cache of :class:`Reader` spans evaluations, but a 304 is still a request; within
    one evaluation nothing changes that phasegate would notice, so a second read of the same
    URL (the default branch's tree for its files and for its issue templates, say) is
    answered from here.
    """

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._seen: dict[str, Any] = {}

    def get(self, repo: str, path: str, params: dict[str, Any] | None = None) -> Any:
        key = "get " + path + json.dumps(params or {}, sort_keys=True)
        if key not in self._seen:
            self._seen[key] = self.reader.get(repo, path, params)
        return self._seen[key]

    def get_all(
        self, repo: str, path: str, params: dict[str, Any] | None = None, *, key: str | None = None
    ) -> list[Any]:
        seen = f"all {path}{json.dumps(params or {}, sort_keys=True)}{key}"
        if seen not in self._seen:
            self._seen[seen] = self.reader.get_all(repo, path, params, key=key)
        return self._seen[seen]


def _message(body: str) -> str:
    try:
        return str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        return body[:200]
