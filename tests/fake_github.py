"""A fake GitHub REST API for tests: real HTTP, GitHub's wire format, state you seed and inspect.

GitHub cannot be reached from the test machines, so the GitHub integration is tested against
this server instead. It is only useful if it behaves like GitHub where phasegate can get it
wrong, so it is built from GitHub's own OpenAPI description (the subset committed in
`tests/fixtures/github-openapi-subset.json`, see `tests/fake_github_spec.py`):

- request bodies are validated against GitHub's request schemas, limits included (a check run
  takes at most 50 annotations and a 65,535-character summary); failures answer 422 in
  GitHub's words ("Invalid request.\\n\\nNo more than 50 items are allowed; 51 were supplied.");
- responses are GitHub's example responses, filled with the state the fake holds, every URL
  pointing back at this server, so PyGithub's lazy objects and `Link` pagination work;
- authentication is GitHub's: an App's RS256 JWT (checked against the App's public key,
  `iss`, `exp`) is exchanged for an expiring installation token; the Checks API refuses a
  personal access token with GitHub's 403; installation permissions are enforced;
- operational behaviour is switchable: ETag / 304 (a 304 costs no rate limit), primary rate
  limit headers on every response and 403/429 when spent, secondary rate limits with
  `Retry-After`, injected 5xx responses, expired or revoked tokens.

Usage::

    fake = FakeGitHub()
    repo = fake.add_repo("acme/churn", files={"policies/gates.yaml": "kind: Gate\\n"})
    pr = repo.add_pull("model/12-churn", files={"models/card.md": "# Card\\n"}, labels=["Model"])
    fake.add_user_token("ghp_test", login="ann")
    with serving(fake.app) as base:                     # tests/servers.py
        gh = github.Github(base_url=base, auth=github.Auth.Token("ghp_test"))
        gh.get_repo("acme/churn").get_pull(pr.number).get_files()
    assert fake.count("pulls/list-files") == 1

PyGithub prefixes every request path with the path of its `base_url` and adds nothing itself:
`Github(base_url=base)` asks for `/repos/...`, `Github(base_url=base + "/api/v3")` (the GitHub
Enterprise Server form) asks for `/api/v3/repos/...`. The fake serves both and answers with
URLs under the prefix the request used, because PyGithub follows those URLs (pagination,
`check_run.edit()`, lazy completion) and refuses ones outside its base URL.
"""

from __future__ import annotations

import base64
import copy
import difflib
import fnmatch
import hashlib
import itertools
import json
import math
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import jwt
from jsonschema import Draft7Validator, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SUBSET = Path(__file__).resolve().parent / "fixtures" / "github-openapi-subset.json"
API_VERSION = "2022-11-28"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
DEFAULT_PERMISSIONS = {
    "checks": "write",
    "statuses": "write",
    "issues": "write",
    "pull_requests": "write",
    "contents": "read",
    "metadata": "read",
}
# PyGithub's Commit.get_statuses() uses GitHub's older path for listing statuses.
ALIASES = [("GET", "/repos/{owner}/{repo}/statuses/{ref}", "repos/list-commit-statuses-for-ref")]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def git_hash(kind: str, data: bytes) -> str:
    """The object id git itself would give, so shas look and behave like GitHub's."""
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def node_id(kind: str, number: int) -> str:
    """GitHub's legacy global node id: base64 of "<len>:<Type><id>"."""
    return base64.b64encode(f"{len(kind):02d}:{kind}{number}".encode()).decode()


def as_bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


# --- the repository model -------------------------------------------------------------------


@dataclass
class TreeEntry:
    name: str
    mode: str  # as the API shows it: "100644" for a file, "040000" for a directory
    type: str  # "blob" or "tree"
    sha: str
    size: int | None = None


@dataclass
class Commit:
    sha: str
    tree: str
    parents: list[str]
    message: str
    author: str
    date: datetime
    files: dict[str, bytes]  # the whole snapshot, path -> content


@dataclass
class FileChange:
    """One entry of a pull request's or commit's "files changed"."""

    filename: str
    status: str  # added, modified, removed
    additions: int
    deletions: int
    patch: str
    sha: str


def diff(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> list[FileChange]:
    changes = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        status = "added" if before is None else "removed" if after is None else "modified"
        lines = list(
            difflib.unified_diff(
                (before or b"").decode(errors="replace").splitlines(),
                (after or b"").decode(errors="replace").splitlines(),
                lineterm="",
            )
        )[2:]  # GitHub's patch starts at the first hunk, without the ---/+++ header
        changes.append(
            FileChange(
                filename=path,
                status=status,
                additions=sum(line.startswith("+") for line in lines),
                deletions=sum(line.startswith("-") for line in lines),
                patch="\n".join(lines),
                sha=git_hash("blob", after if after is not None else before or b""),
            )
        )
    return changes


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass
class Comment:
    id: int
    issue_number: int
    body: str
    user: str
    created_at: datetime
    updated_at: datetime


@dataclass
class Review:
    id: int
    user: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    body: str
    commit_id: str
    submitted_at: datetime


@dataclass
class Pull:
    """What a pull request has beyond its issue (title, body, labels live on the issue)."""

    id: int
    head: str
    base: str
    draft: bool = False
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    reviews: list[Review] = field(default_factory=list)


@dataclass
class Issue:
    """An issue or a pull request: on GitHub they share one number space and the issue API."""

    id: int
    number: int
    title: str
    body: str | None
    user: str
    labels: list[str]
    state: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    pull: Pull | None = None
    comments: list[Comment] = field(default_factory=list)


@dataclass
class App:
    id: int
    slug: str
    name: str
    owner: str
    public_key: str  # PEM; the JWTs the App signs are verified with it


@dataclass
class Installation:
    id: int
    app: App
    account: str
    repositories: list[str] | None  # repository names; None means all of the account's
    permissions: dict[str, str]


@dataclass
class Token:
    token: str
    installation: Installation
    expires_at: datetime
    permissions: dict[str, str]
    repositories: list[str] | None
    revoked: bool = False


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    app: App
    suite_id: int
    status: str = "queued"
    conclusion: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    details_url: str | None = None
    external_id: str = ""
    output: dict[str, str | None] = field(
        default_factory=lambda: {"title": None, "summary": None, "text": None}
    )
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Status:
    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: datetime


class Repo:
    """One repository's state. Seed it with the methods below; read the attributes to inspect."""

    def __init__(
        self, github: FakeGitHub, owner: str, name: str, default_branch: str, private: bool
    ):
        self._github = github
        self.id = github.new_id()
        self.owner = owner
        self.name = name
        self.default_branch = default_branch
        self.private = private
        self.created_at = utcnow()
        self.branches: dict[str, str] = {}
        self.commits: dict[str, Commit] = {}
        self.trees: dict[str, list[TreeEntry]] = {}
        self.labels: dict[str, Label] = {}  # lower-cased name -> label (GitHub ignores case)
        self.issues: dict[int, Issue] = {}  # issues and pull requests, by number
        self.check_runs: dict[int, CheckRun] = {}
        self.statuses: list[Status] = []

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    # -- seeding --

    def push(
        self,
        branch: str,
        files: Mapping[str, str | bytes | None],
        *,
        message: str = "Update files",
        author: str | None = None,
        base: str | None = None,
    ) -> str:
        """Commit `files` (None deletes a path) on top of `branch`; a new branch starts at
        `base` (default branch by default). Returns the new commit's sha."""
        with self._github.lock:
            parent = self.branches.get(branch) or self.branches.get(base or self.default_branch)
            snapshot = dict(self.commits[parent].files) if parent else {}
            for path, content in files.items():
                path = path.strip("/")
                if content is None:
                    snapshot.pop(path, None)
                else:
                    snapshot[path] = as_bytes(content)
            sha = self._commit(snapshot, [parent] if parent else [], message, author or self.owner)
            self.branches[branch] = sha
            return sha

    def add_label(self, name: str, color: str = "ededed", description: str | None = None) -> Label:
        with self._github.lock:
            label = Label(self._github.new_id(), name, color, description)
            self.labels[name.lower()] = label
            return label

    def add_issue(
        self,
        title: str,
        body: str | None = "",
        *,
        user: str = "octocat",
        labels: Iterable[str] = (),
        state: str = "open",
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> Issue:
        with self._github.lock:
            created = created_at or utcnow()
            issue = Issue(
                id=self._github.new_id(),
                number=len(self.issues) + 1,
                title=title,
                body=body,
                user=user,
                labels=[],
                state=state,
                created_at=created,
                updated_at=updated_at or created,
                closed_at=(updated_at or created) if state == "closed" else None,
            )
            self.issues[issue.number] = issue
            self.set_labels(issue, labels)
            return issue

    def add_pull(
        self,
        head: str,
        base: str | None = None,
        *,
        title: str = "",
        body: str | None = "",
        user: str = "octocat",
        labels: Iterable[str] = (),
        draft: bool = False,
        files: Mapping[str, str | bytes | None] | None = None,
    ) -> Issue:
        """A pull request from `head` into `base` (the default branch by default). With
        `files`, they are first pushed to `head` (branched from `base` when it is new).
        Its files changed are the diff from the merge base, computed like GitHub does."""
        with self._github.lock:
            base = base or self.default_branch
            if files is not None:
                self.push(head, files, base=base, author=user)
            if head not in self.branches:
                raise ValueError(f"branch {head!r} does not exist; push files to it first")
            issue = self.add_issue(title or head, body, user=user, labels=labels)
            issue.pull = Pull(id=self._github.new_id(), head=head, base=base, draft=draft)
            return issue

    def add_review(
        self,
        number: int,
        user: str,
        state: str = "APPROVED",
        body: str = "",
        commit_id: str | None = None,
    ) -> Review:
        with self._github.lock:
            pull = self.pull(number)
            review = Review(
                self._github.new_id(),
                user,
                state,
                body,
                commit_id or self.branches[pull.head],
                utcnow(),
            )
            pull.reviews.append(review)
            return review

    def add_check_run(
        self,
        sha: str,
        name: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
        app: App | None = None,
        output: Mapping[str, str] | None = None,
    ) -> CheckRun:
        """A check run by another App (GitHub Actions unless `app` is given), e.g. CI."""
        with self._github.lock:
            app = app or self._github.actions_app
            moment = utcnow()
            run = CheckRun(
                id=self._github.new_id(),
                name=name,
                head_sha=sha,
                app=app,
                suite_id=self._github.suite_id(sha, app),
                status=status,
                conclusion=conclusion,
                started_at=moment,
                completed_at=moment if status == "completed" else None,
            )
            run.output.update(output or {})
            self.check_runs[run.id] = run
            return run

    def add_status(
        self,
        sha: str,
        state: str,
        context: str = "default",
        *,
        description: str | None = None,
        target_url: str | None = None,
        creator: str = "octocat",
    ) -> Status:
        with self._github.lock:
            status = Status(
                self._github.new_id(),
                sha,
                state,
                context,
                description,
                target_url,
                creator,
                utcnow(),
            )
            self.statuses.append(status)
            return status

    def merge_pull(self, number: int, by: str | None = None) -> str:
        """Merge a pull request with a merge commit on its base; returns that commit's sha."""
        with self._github.lock:
            issue = self.issues[number]
            pull = self.pull(number)
            head = self.commits[self.branches[pull.head]]
            sha = self._commit(
                dict(head.files),
                [self.branches[pull.base], head.sha],
                f"Merge pull request #{number} from {self.owner}/{pull.head}",
                by or self.owner,
            )
            self.branches[pull.base] = sha
            pull.merged, pull.merged_at, pull.merged_by = True, utcnow(), by or self.owner
            pull.merge_commit_sha = sha
            issue.state = "closed"
            issue.closed_at = issue.updated_at = pull.merged_at
            return sha

    # -- reading --

    def pull(self, number: int) -> Pull:
        pull = self.issues[number].pull
        if pull is None:
            raise KeyError(f"#{number} is an issue, not a pull request")
        return pull

    def check_runs_for(self, sha: str) -> list[CheckRun]:
        return [run for run in self.check_runs.values() if run.head_sha == sha]

    def statuses_for(self, sha: str) -> list[Status]:
        return [status for status in self.statuses if status.sha == sha]

    def comments(self, number: int) -> list[Comment]:
        return list(self.issues[number].comments)

    def resolve(self, ref: str) -> str | None:
        """A branch name (optionally `heads/`, `refs/heads/`), a sha or an unambiguous prefix."""
        name = ref.removeprefix("refs/").removeprefix("heads/")
        if name in self.branches:
            return self.branches[name]
        if ref in self.commits:
            return ref
        matches = [sha for sha in self.commits if len(ref) >= 7 and sha.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def lookup(self, sha: str, path: str) -> TreeEntry | None:
        """The tree entry at `path` in commit `sha` ("" is the root directory)."""
        entry = TreeEntry("", "040000", "tree", self.commits[sha].tree)
        for part in filter(None, path.split("/")):
            if entry.type != "tree":
                return None
            entry = next((e for e in self.trees[entry.sha] if e.name == part), None)
            if entry is None:
                return None
        return entry

    def merge_base(self, one: str, other: str) -> str | None:
        mine = set(self._ancestry(one))
        return next((sha for sha in self._ancestry(other) if sha in mine), None)

    def pull_files(self, pull: Pull) -> list[FileChange]:
        head = self.branches[pull.head]
        base = self.merge_base(head, self.branches[pull.base])
        return diff(self.commits[base].files if base else {}, self.commits[head].files)

    def pull_commits(self, pull: Pull) -> int:
        base = set(self._ancestry(self.branches[pull.base]))
        return sum(sha not in base for sha in self._ancestry(self.branches[pull.head]))

    def set_labels(self, issue: Issue, names: Iterable[str | Mapping[str, str]]) -> None:
        """Add labels to an issue; like GitHub, an unknown label is created on the way."""
        for item in names:
            name = item if isinstance(item, str) else item["name"]
            label = self.labels.get(name.lower()) or self.add_label(name)
            if label.name not in issue.labels:
                issue.labels.append(label.name)

    # -- git objects --

    def _ancestry(self, sha: str) -> Iterator[str]:
        queue, seen = [sha], set()
        while queue:
            current = queue.pop(0)
            if current not in seen:
                seen.add(current)
                yield current
                queue.extend(self.commits[current].parents)

    def _commit(
        self, files: dict[str, bytes], parents: list[str], message: str, author: str
    ) -> str:
        tree = self._write_tree(files)
        moment = utcnow()
        signature = f"{author} <{author}@users.noreply.github.com> {int(moment.timestamp())} +0000"
        raw = (
            f"tree {tree}\n"
            + "".join(f"parent {parent}\n" for parent in parents)
            + f"author {signature}\ncommitter {signature}\n\n{message}\n"
        )
        sha = git_hash("commit", raw.encode())
        self.commits[sha] = Commit(sha, tree, parents, message, author, moment, files)
        return sha

    def _write_tree(self, files: Mapping[str, bytes]) -> str:
        root: dict[str, Any] = {}
        for path, content in files.items():
            *folders, name = path.split("/")
            node = root
            for folder in folders:
                node = node.setdefault(folder, {})
            node[name] = content
        return self._tree_object(root)

    def _tree_object(self, node: Mapping[str, Any]) -> str:
        entries = []
        for name, child in node.items():
            if isinstance(child, dict):
                entries.append(TreeEntry(name, "040000", "tree", self._tree_object(child)))
            else:
                entries.append(
                    TreeEntry(name, "100644", "blob", git_hash("blob", child), len(child))
                )
        entries.sort(key=lambda e: e.name + ("/" if e.type == "tree" else ""))  # git's order
        raw = b"".join(
            f"{e.mode.lstrip('0')} {e.name}".encode() + b"\0" + bytes.fromhex(e.sha)
            for e in entries
        )
        sha = git_hash("tree", raw)
        self.trees[sha] = entries
        return sha


# --- what the tests switch and read ---------------------------------------------------------


@dataclass
class Call:
    """One request as the fake received it. The credential itself is never kept: `auth` is
    the scheme of the Authorization header ("token", "Bearer") and `identity` who it was."""

    method: str
    path: str  # without the /api/v3 prefix
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names, Authorization left out
    auth: str | None
    body: Any
    operation: str | None = None  # GitHub's operationId, e.g. "checks/create"
    identity: str | None = None  # "installation:7", "user:ann", "app:42", "anonymous"
    status: int = 0
    counted: bool = False  # whether it spent primary rate limit


@dataclass
class RateLimit:
    """The primary ("core") rate limit, one bucket for every caller."""

    limit: int = 5000
    remaining: int = 5000
    reset: int = field(default_factory=lambda: int(time.time()) + 3600)
    status: int = 403  # GitHub answers 403 or 429 once it is spent

    @property
    def used(self) -> int:
        return self.limit - self.remaining

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-resource": "core",
        }

    def refill_if_due(self) -> None:
        if time.time() >= self.reset:
            self.remaining = self.limit
            self.reset = int(time.time()) + 3600


@dataclass
class Fault:
    """A canned answer for the next `times` matching requests (5xx, secondary rate limit),
    once `after` matching requests have been let through; with `applied` the request takes
    effect first and only its answer is the error (GitHub timing out after the write)."""

    target: str  # "*", a path glob starting with "/", or an operationId
    times: int
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    method: str | None = None
    after: int = 0
    applied: bool = False

    def matches(self, call: Call) -> bool:
        if self.method and self.method.upper() != call.method:
            return False
        if self.target == "*" or self.target.startswith("/"):
            return fnmatch.fnmatchcase(call.path, self.target)
        return call.operation == self.target


@dataclass(frozen=True)
class Identity:
    kind: str  # anonymous, user, app, installation
    login: str | None = None
    app: App | None = None
    token: Token | None = None

    def __str__(self) -> str:
        if self.kind == "installation" and self.token:
            return f"installation:{self.token.installation.id}"
        if self.kind == "app" and self.app:
            return f"app:{self.app.id}"
        return f"user:{self.login}" if self.kind == "user" else self.kind

    @property
    def actor(self) -> str:
        """The login GitHub shows as the author of what this caller creates."""
        if self.token:
            return f"{self.token.installation.app.slug}[bot]"
        return self.login or "ghost"


class HttpError(Exception):
    """An error answer, rendered as GitHub renders them (message, errors, documentation_url)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


# --- GitHub's spec, and responses in its shapes ---------------------------------------------


class Spec:
    """The committed subset of GitHub's OpenAPI description."""

    def __init__(self, path: Path = SUBSET):
        data = json.loads(path.read_text())
        self.operations: dict[str, dict[str, Any]] = data["operations"]
        self.validators = {
            operation: Draft7Validator(
                entry["request_schema"], format_checker=Draft7Validator.FORMAT_CHECKER
            )
            for operation, entry in self.operations.items()
            if "request_schema" in entry
        }

    def example(self, operation: str, name: str | None = None) -> Any:
        """A fresh copy of GitHub's example response (the first item, for a list)."""
        examples = self.operations[operation]["examples"]
        value = copy.deepcopy(examples[name] if name else next(iter(examples.values())))
        return value[0] if isinstance(value, list) else value

    def limit(self, operation: str, field_name: str, keyword: str) -> int:
        return next(
            entry[keyword]
            for entry in self.operations[operation]["limits"]
            if entry["field"] == field_name and keyword in entry
        )

    def routes(self) -> list[tuple[str, str, str]]:
        """(method, path template, operationId) for every operation, aliases included."""
        return [
            (entry["method"], entry["path"], operation)
            for operation, entry in self.operations.items()
        ] + ALIASES


def fill(template: dict[str, Any], **values: Any) -> dict[str, Any]:
    """Set fields of a GitHub example; a field the example lacks stays out, so the shape stays
    GitHub's."""
    for key, value in values.items():
        if key in template:
            template[key] = value
    return template


def rewrite(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [rewrite(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: rewrite(item, old, new) for key, item in value.items()}
    return value


class Shapes:
    """Renders the fake's state as GitHub's example responses, with URLs on this server."""

    def __init__(self, github: FakeGitHub, api: str, web: str):
        self.github, self.spec, self.api, self.web = github, github.spec, api, web

    def example(self, operation: str, name: str | None = None) -> Any:
        """GitHub's example with its github.com URLs pointing at this server. Only examples
        are rewritten: what tests seed (an issue body linking github.com) stays as it is."""
        body = self.spec.example(operation, name)
        for old, new in (
            ("https://api.github.com", self.api),
            ("http://api.github.com", self.api),
            ("https://github.com", self.web),
        ):
            body = rewrite(body, old, new)
        return body

    def repo_api(self, repo: Repo) -> str:
        return f"{self.api}/repos/{repo.full_name}"

    def user(self, login: str, kind: str | None = None) -> dict[str, Any]:
        template = rewrite(self.example("issues/get")["user"], "octocat", login)
        number = self.github.user_id(login)
        kind = kind or ("Bot" if login.endswith("[bot]") else "User")
        return fill(template, login=login, id=number, node_id=node_id(kind, number), type=kind)

    def repo(self, repo: Repo, template: dict[str, Any] | None = None) -> dict[str, Any]:
        body = template or self.example("repos/get")
        for key in ("organization", "parent", "source", "template_repository"):
            body.pop(key, None)  # a repository that is no fork and belongs to a user
        body = rewrite(body, "octocat/Hello-World", repo.full_name)
        open_issues = sum(issue.state == "open" for issue in repo.issues.values())
        host = self.web.split("://", 1)[1]
        return fill(
            body,
            id=repo.id,
            node_id=node_id("Repository", repo.id),
            name=repo.name,
            full_name=repo.full_name,
            owner=self.user(repo.owner),
            private=repo.private,
            visibility="private" if repo.private else "public",
            description=None,
            homepage=None,
            fork=False,
            html_url=f"{self.web}/{repo.full_name}",
            url=self.repo_api(repo),
            clone_url=f"{self.web}/{repo.full_name}.git",
            git_url=f"git://{host}/{repo.full_name}.git",
            ssh_url=f"git@{host}:{repo.full_name}.git",
            svn_url=f"{self.web}/{repo.full_name}",
            default_branch=repo.default_branch,
            open_issues=open_issues,
            open_issues_count=open_issues,
            topics=[],
            forks=0,
            forks_count=0,
            network_count=0,
            stargazers_count=0,
            subscribers_count=0,
            watchers=0,
            watchers_count=0,
            language=None,
            license=None,
            mirror_url=None,
            is_template=False,
            created_at=iso(repo.created_at),
            updated_at=iso(repo.created_at),
            pushed_at=iso(max((c.date for c in repo.commits.values()), default=repo.created_at)),
        )

    def label(self, repo: Repo, label: Label) -> dict[str, Any]:
        return fill(
            self.example("issues/get-label"),
            id=label.id,
            node_id=node_id("Label", label.id),
            url=f"{self.repo_api(repo)}/labels/{quote(label.name)}",
            name=label.name,
            description=label.description,
            color=label.color,
            default=label.default,
        )

    def association(self, repo: Repo, login: str) -> str:
        return "OWNER" if login == repo.owner else "CONTRIBUTOR"

    def issue(self, repo: Repo, issue: Issue, template: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.repo_api(repo)}/issues/{issue.number}"
        kind = "pull" if issue.pull else "issues"
        body = fill(
            template,
            id=issue.id,
            node_id=node_id("Issue", issue.id),
            url=url,
            repository_url=self.repo_api(repo),
            labels_url=f"{url}/labels{{/name}}",
            comments_url=f"{url}/comments",
            events_url=f"{url}/events",
            html_url=f"{self.web}/{repo.full_name}/{kind}/{issue.number}",
            number=issue.number,
            state=issue.state,
            state_reason="completed" if issue.state == "closed" else None,
            title=issue.title,
            body=issue.body,
            user=self.user(issue.user),
            labels=[self.label(repo, repo.labels[name.lower()]) for name in issue.labels],
            assignee=None,
            assignees=[],
            milestone=None,
            locked=False,
            active_lock_reason=None,
            comments=len(issue.comments),
            created_at=iso(issue.created_at),
            updated_at=iso(issue.updated_at),
            closed_at=iso(issue.closed_at),
            closed_by=None,
            pinned_comment=None,
            author_association=self.association(repo, issue.user),
        )
        if issue.pull:
            html = f"{self.web}/{repo.full_name}/pull/{issue.number}"
            body["pull_request"] = {
                "url": f"{self.repo_api(repo)}/pulls/{issue.number}",
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": iso(issue.pull.merged_at),
            }
        else:
            body.pop("pull_request", None)  # GitHub's mark of a pull request in the issue API
        return body

    def pull(
        self, repo: Repo, issue: Issue, template: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A pull request as `pulls/get` shows it, or in another operation's (simpler) shape:
        `fill` leaves out what that shape lacks."""
        pull = issue.pull
        assert pull is not None
        template = template or self.example("pulls/get")
        url = f"{self.repo_api(repo)}/pulls/{issue.number}"
        html = f"{self.web}/{repo.full_name}/pull/{issue.number}"
        issue_url = f"{self.repo_api(repo)}/issues/{issue.number}"
        head_sha = repo.branches[pull.head]
        changes = repo.pull_files(pull)

        def side(ref: str, sha: str, part: dict[str, Any]) -> dict[str, Any]:
            return fill(
                part,
                label=f"{repo.owner}:{ref}",
                ref=ref,
                sha=sha,
                user=self.user(repo.owner),
                repo=self.repo(repo, part["repo"]),
            )

        links = {
            "self": url,
            "html": html,
            "issue": issue_url,
            "comments": f"{issue_url}/comments",
            "review_comments": f"{url}/comments",
            "review_comment": f"{self.repo_api(repo)}/pulls/comments{{/number}}",
            "commits": f"{url}/commits",
            "statuses": f"{self.repo_api(repo)}/statuses/{head_sha}",
        }
        return fill(
            template,
            url=url,
            id=pull.id,
            node_id=node_id("PullRequest", pull.id),
            html_url=html,
            diff_url=f"{html}.diff",
            patch_url=f"{html}.patch",
            issue_url=issue_url,
            commits_url=links["commits"],
            review_comments_url=links["review_comments"],
            review_comment_url=links["review_comment"],
            comments_url=links["comments"],
            statuses_url=links["statuses"],
            number=issue.number,
            state=issue.state,
            locked=False,
            title=issue.title,
            user=self.user(issue.user),
            body=issue.body,
            labels=[self.label(repo, repo.labels[name.lower()]) for name in issue.labels],
            milestone=None,
            active_lock_reason=None,
            created_at=iso(issue.created_at),
            updated_at=iso(issue.updated_at),
            closed_at=iso(issue.closed_at),
            merged_at=iso(pull.merged_at),
            merge_commit_sha=pull.merge_commit_sha,
            assignee=None,
            assignees=[],
            requested_reviewers=[],
            requested_teams=[],
            head=side(pull.head, head_sha, template["head"]),
            base=side(pull.base, repo.branches[pull.base], template["base"]),
            _links={name: {"href": href} for name, href in links.items()},
            author_association=self.association(repo, issue.user),
            auto_merge=None,
            draft=pull.draft,
            merged=pull.merged,
            mergeable=None if pull.merged else True,
            mergeable_state="draft" if pull.draft else "clean",
            merged_by=self.user(pull.merged_by) if pull.merged_by else None,
            comments=len(issue.comments),
            review_comments=0,
            maintainer_can_modify=False,
            commits=repo.pull_commits(pull),
            additions=sum(change.additions for change in changes),
            deletions=sum(change.deletions for change in changes),
            changed_files=len(changes),
        )

    def file_change(self, repo: Repo, change: FileChange, ref: str) -> dict[str, Any]:
        return fill(
            self.example("pulls/list-files"),
            sha=change.sha,
            filename=change.filename,
            status=change.status,
            additions=change.additions,
            deletions=change.deletions,
            changes=change.additions + change.deletions,
            blob_url=f"{self.web}/{repo.full_name}/blob/{ref}/{change.filename}",
            raw_url=f"{self.web}/{repo.full_name}/raw/{ref}/{change.filename}",
            contents_url=f"{self.repo_api(repo)}/contents/{quote(change.filename)}?ref={ref}",
            patch=change.patch,
        )

    def review(self, repo: Repo, number: int, review: Review) -> dict[str, Any]:
        html = f"{self.web}/{repo.full_name}/pull/{number}#pullrequestreview-{review.id}"
        pull_url = f"{self.repo_api(repo)}/pulls/{number}"
        return fill(
            self.example("pulls/list-reviews"),
            id=review.id,
            node_id=node_id("PullRequestReview", review.id),
            user=self.user(review.user),
            body=review.body,
            state=review.state,
            html_url=html,
            pull_request_url=pull_url,
            _links={"html": {"href": html}, "pull_request": {"href": pull_url}},
            submitted_at=iso(review.submitted_at),
            commit_id=review.commit_id,
            author_association=self.association(repo, review.user),
        )

    def commit(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        base = self.repo_api(repo)
        parent = repo.commits[commit.parents[0]].files if commit.parents else {}
        changes = diff(parent, commit.files)
        additions = sum(change.additions for change in changes)
        deletions = sum(change.deletions for change in changes)
        template = self.example("repos/get-commit")
        person = {"name": commit.author, "email": f"{commit.author}@users.noreply.github.com"}
        fill(
            template["commit"],
            url=f"{base}/git/commits/{commit.sha}",
            author={**person, "date": iso(commit.date)},
            committer={**person, "date": iso(commit.date)},
            message=commit.message,
            tree={"sha": commit.tree, "url": f"{base}/git/trees/{commit.tree}"},
            comment_count=0,
        )
        return fill(
            template,
            sha=commit.sha,
            node_id=node_id("Commit", int(commit.sha[:8], 16)),
            url=f"{base}/commits/{commit.sha}",
            html_url=f"{self.web}/{repo.full_name}/commit/{commit.sha}",
            comments_url=f"{base}/commits/{commit.sha}/comments",
            author=self.user(commit.author),
            committer=self.user(commit.author),
            parents=[
                {
                    "sha": sha,
                    "url": f"{base}/commits/{sha}",
                    "html_url": f"{self.web}/{repo.full_name}/commit/{sha}",
                }
                for sha in commit.parents
            ],
            stats={"additions": additions, "deletions": deletions, "total": additions + deletions},
            files=[self.file_change(repo, change, commit.sha) for change in changes],
        )

    def content(
        self, repo: Repo, path: str, entry: TreeEntry, ref: str, data: bytes | None
    ) -> dict[str, Any]:
        """A file (with its base64 content, when `data` is given) or a directory entry."""
        kind = "file" if entry.type == "blob" else "dir"
        url = f"{self.repo_api(repo)}/contents/{quote(path)}?ref={quote(ref, safe='')}"
        git_url = f"{self.repo_api(repo)}/git/{'blobs' if kind == 'file' else 'trees'}/{entry.sha}"
        html = f"{self.web}/{repo.full_name}/{'blob' if kind == 'file' else 'tree'}/{ref}/{path}"
        example = "file" if data is not None else "directory"
        template = self.example("repos/get-content", f"response-if-content-is-a-{example}")
        body = fill(
            template,
            type=kind,
            size=entry.size or 0,
            name=path.rsplit("/", 1)[-1],
            path=path,
            sha=entry.sha,
            url=url,
            git_url=git_url,
            html_url=html,
            download_url=f"{self.web}/{repo.full_name}/raw/{ref}/{path}"
            if kind == "file"
            else None,
            _links={"self": url, "git": git_url, "html": html},
        )
        if data is not None:
            encoded = base64.b64encode(data).decode()
            # GitHub wraps the base64 text at 60 characters, newline-terminated.
            lines = (f"{encoded[i : i + 60]}\n" for i in range(0, len(encoded), 60))
            fill(body, content="".join(lines), encoding="base64")
        return body

    def file_commit(self, repo: Repo, path: str, branch: str, commit: Commit) -> dict[str, Any]:
        """What creating or updating a file answers: the file as it now is, and the commit."""
        template = self.example("repos/create-or-update-file-contents")
        entry = repo.lookup(commit.sha, path)
        assert entry is not None
        url = f"{self.repo_api(repo)}/contents/{quote(path)}?ref={quote(branch, safe='')}"
        git_url = f"{self.repo_api(repo)}/git/blobs/{entry.sha}"
        html = f"{self.web}/{repo.full_name}/blob/{branch}/{path}"
        fill(
            template["content"],
            name=path.rsplit("/", 1)[-1],
            path=path,
            sha=entry.sha,
            size=entry.size or 0,
            url=url,
            git_url=git_url,
            html_url=html,
            download_url=f"{self.web}/{repo.full_name}/raw/{branch}/{path}",
            type="file",
            _links={"self": url, "git": git_url, "html": html},
        )
        person = {
            "name": commit.author,
            "email": f"{commit.author}@users.noreply.github.com",
            "date": iso(commit.date),
        }
        commit_url = f"{self.repo_api(repo)}/git/commits/{commit.sha}"
        fill(
            template["commit"],
            sha=commit.sha,
            node_id=node_id("Commit", int(commit.sha[:8], 16)),
            url=commit_url,
            html_url=f"{self.web}/{repo.full_name}/commit/{commit.sha}",
            author=person,
            committer=dict(person),
            message=commit.message,
            tree={"url": f"{self.repo_api(repo)}/git/trees/{commit.tree}", "sha": commit.tree},
            parents=[
                {
                    "url": f"{self.repo_api(repo)}/git/commits/{sha}",
                    "html_url": f"{self.web}/{repo.full_name}/commit/{sha}",
                    "sha": sha,
                }
                for sha in commit.parents
            ],
        )
        return template

    def ref(self, repo: Repo, branch: str) -> dict[str, Any]:
        sha = repo.branches[branch]
        template = self.example("git/get-ref")
        fill(
            template["object"],
            sha=sha,
            type="commit",
            url=f"{self.repo_api(repo)}/git/commits/{sha}",
        )
        return fill(
            template,
            ref=f"refs/heads/{branch}",
            node_id=base64.b64encode(f"03:Refrefs/heads/{branch}".encode()).decode(),  # GitHub's
            url=f"{self.repo_api(repo)}/git/refs/heads/{quote(branch, safe='/')}",
        )

    def tree(self, repo: Repo, sha: str, recursive: bool) -> dict[str, Any]:
        template = self.example("git/get-tree")
        item = template["tree"][0]
        base = self.repo_api(repo)

        def walk(tree_sha: str, prefix: str) -> Iterator[dict[str, Any]]:
            for entry in repo.trees[tree_sha]:
                kind = "blobs" if entry.type == "blob" else "trees"
                shown = fill(
                    copy.deepcopy(item),
                    path=prefix + entry.name,
                    mode=entry.mode,
                    type=entry.type,
                    sha=entry.sha,
                    size=entry.size,
                    url=f"{base}/git/{kind}/{entry.sha}",
                )
                if entry.type == "tree":
                    shown.pop("size", None)  # GitHub gives the size of blobs only
                yield shown
                if recursive and entry.type == "tree":
                    yield from walk(entry.sha, f"{prefix}{entry.name}/")

        entries = list(itertools.islice(walk(sha, ""), self.github.tree_limit + 1))
        truncated = len(entries) > self.github.tree_limit
        return fill(
            template,
            sha=sha,
            url=f"{base}/git/trees/{sha}",
            tree=entries[: self.github.tree_limit],
            truncated=truncated,
        )

    def app(self, app: App) -> dict[str, Any]:
        template = self.example("checks/get")["app"]
        return fill(
            template,
            id=app.id,
            slug=app.slug,
            node_id=node_id("Integration", app.id),
            owner=self.user(app.owner, "Organization"),
            name=app.name,
            description="",
            external_url=self.web,
            html_url=f"{self.web}/apps/{app.slug}",
            permissions=dict(DEFAULT_PERMISSIONS),
            events=[],
        )

    def check_run(self, repo: Repo, run: CheckRun) -> dict[str, Any]:
        template = self.example("checks/get")
        url = f"{self.repo_api(repo)}/check-runs/{run.id}"
        fill(
            template["output"],
            title=run.output["title"],
            summary=run.output["summary"],
            text=run.output["text"],
            annotations_count=len(run.annotations),
            annotations_url=f"{url}/annotations",
        )
        pulls = [
            {
                "url": f"{self.repo_api(repo)}/pulls/{issue.number}",
                "id": issue.pull.id,
                "number": issue.number,
                "head": self.branch_ref(repo, issue.pull.head),
                "base": self.branch_ref(repo, issue.pull.base),
            }
            for issue in repo.issues.values()
            if issue.pull
            and issue.state == "open"
            and repo.branches[issue.pull.head] == run.head_sha
        ]
        return fill(
            template,
            id=run.id,
            head_sha=run.head_sha,
            node_id=node_id("CheckRun", run.id),
            external_id=run.external_id,
            url=url,
            html_url=f"{self.web}/{repo.full_name}/runs/{run.id}",
            details_url=run.details_url or f"{self.web}/apps/{run.app.slug}",
            status=run.status,
            conclusion=run.conclusion,
            started_at=iso(run.started_at),
            completed_at=iso(run.completed_at),
            name=run.name,
            check_suite={"id": run.suite_id},
            app=self.app(run.app),
            pull_requests=pulls,
        )

    def branch_ref(self, repo: Repo, branch: str) -> dict[str, Any]:
        return {
            "ref": branch,
            "sha": repo.branches[branch],
            "repo": {"id": repo.id, "url": self.repo_api(repo), "name": repo.name},
        }

    def status(self, repo: Repo, status: Status, template: dict[str, Any]) -> dict[str, Any]:
        return fill(
            template,
            url=f"{self.repo_api(repo)}/statuses/{status.sha}",
            avatar_url=f"{self.web}/avatars/{status.creator}",
            id=status.id,
            node_id=node_id("StatusContext", status.id),
            state=status.state,
            description=status.description,
            target_url=status.target_url,
            context=status.context,
            created_at=iso(status.created_at),
            updated_at=iso(status.created_at),
            creator=self.user(status.creator),
        )

    def comment(self, repo: Repo, comment: Comment) -> dict[str, Any]:
        issue_url = f"{self.repo_api(repo)}/issues/{comment.issue_number}"
        return fill(
            self.example("issues/create-comment"),
            id=comment.id,
            node_id=node_id("IssueComment", comment.id),
            url=f"{self.repo_api(repo)}/issues/comments/{comment.id}",
            html_url=f"{self.web}/{repo.full_name}/issues/{comment.issue_number}#issuecomment-{comment.id}",
            body=comment.body,
            user=self.user(comment.user),
            created_at=iso(comment.created_at),
            updated_at=iso(comment.updated_at),
            issue_url=issue_url,
            author_association=self.association(repo, comment.user),
            minimized=None,
            pin=None,
        )

    def installation(self, installation: Installation) -> dict[str, Any]:
        base = f"{self.api}/app/installations/{installation.id}"
        return fill(
            self.example("apps/get-repo-installation"),
            id=installation.id,
            account=self.user(installation.account, "Organization"),
            access_tokens_url=f"{base}/access_tokens",
            repositories_url=f"{self.api}/installation/repositories",
            html_url=f"{self.web}/organizations/{installation.account}/settings/installations/{installation.id}",
            app_id=installation.app.id,
            app_slug=installation.app.slug,
            client_id=f"Iv1.{installation.app.id:016x}",
            target_id=self.github.user_id(installation.account),
            target_type="Organization",
            permissions=installation.permissions,
            events=[],
            repository_selection="all" if installation.repositories is None else "selected",
            single_file_name=None,
            has_multiple_single_files=False,
            single_file_paths=[],
            suspended_at=None,
            suspended_by=None,
        )


# --- the server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """Who may call an operation. `permissions` are alternatives an installation needs one of."""

    permissions: tuple[str, ...] = ()
    apps_only: bool = False  # the Checks API writes: installation tokens only
    jwt: bool = False  # the App's own endpoints: its JWT only


@dataclass
class Context:
    """One request as a handler sees it: authenticated, authorised, its body validated."""

    shapes: Shapes
    operation: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    identity: Identity
    repo: Repo | None

    @property
    def repository(self) -> Repo:
        assert self.repo is not None, self.operation
        return self.repo

    def issue(self) -> Issue:
        issue = self.repository.issues.get(int(self.params["issue_number"]))
        if issue is None:
            raise HttpError(404, "Not Found")
        return issue

    def pull(self) -> Issue:
        issue = self.repository.issues.get(int(self.params["pull_number"]))
        if issue is None or issue.pull is None:
            raise HttpError(404, "Not Found")
        return issue

    def commit_sha(self, ref: str) -> str:
        sha = self.repository.resolve(ref)
        if sha is None:
            raise HttpError(422, f"No commit found for SHA: {ref}")
        return sha

    def option(self, name: str) -> str | None:
        """A query parameter, or its default from GitHub's spec (`state=open`, `per_page=30`)."""
        if name in self.query:
            return self.query[name]
        default = self.shapes.spec.operations[self.operation]["query"].get(name, {}).get("default")
        return None if default is None else str(default)

    def page(self, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """GitHub's pagination: `per_page` (at most 100) and `page`, with a Link header."""
        per_page = min(max(self.number("per_page", 30), 1), 100)
        page = max(self.number("page", 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)
        links = []
        if page > 1:
            links += [("prev", min(page - 1, last)), ("first", 1)]
        if page < last:
            links[:0] = [("next", page + 1), ("last", last)]
        headers = {}
        if links:
            urls = [f'<{self._page_url(number)}>; rel="{rel}"' for rel, number in links]
            headers["link"] = ", ".join(urls)
        return items[(page - 1) * per_page : page * per_page], headers

    def since(self) -> datetime | None:
        text = self.query.get("since")
        try:
            return parse_time(text) if text else None
        except ValueError:
            raise HttpError(422, f"Invalid value for `since`: {text}") from None

    def number(self, name: str, fallback: int) -> int:
        """An integer option; like GitHub, a malformed value counts as absent."""
        try:
            return int(self.option(name) or fallback)
        except ValueError:
            return fallback

    def _page_url(self, number: int) -> str:
        return f"{self.shapes.api}{self.path}?{urlencode({**self.query, 'page': number})}"


Handler = Callable[["FakeGitHub", Context], Reply]
HANDLERS: dict[str, tuple[Handler, Access]] = {}


def operation(name: str, *permissions: str, apps_only: bool = False, jwt: bool = False):
    """Register a method as the handler of GitHub's operation `name`."""

    def register(handler: Handler) -> Handler:
        HANDLERS[name] = (handler, Access(permissions, apps_only, jwt))
        return handler

    return register


def describe(error: ValidationError) -> str:
    """A JSON-schema failure in GitHub's own words (as its 422 "Invalid request." bodies say)."""
    where = "/".join(str(part) for part in list(error.relative_schema_path)[:-1])
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required":
        names = ", ".join(f'"{name}"' for name in value if name not in instance)
        return f"{names} {'weren' if ', ' in names else 'wasn'}'t supplied."
    if kind == "maxItems":
        return f"No more than {value} items are allowed; {len(instance)} were supplied."
    if kind == "minItems":
        return f"At least {value} items are required; {len(instance)} were supplied."
    if kind == "maxLength":
        return f"Only {value} characters are allowed; {len(instance)} were supplied."
    if kind in ("anyOf", "oneOf"):
        details = [describe(sub) for sub in error.context or ()]
        return "\n".join([f'No subschema in "{kind}" matched.', *dict.fromkeys(details)])
    if kind == "enum":
        return f"For '{where}', {json.dumps(instance)} is not a member of {json.dumps(value)}."
    if kind == "type":
        return f"For '{where}', {json.dumps(instance)} is not a {value}."
    return f"For '{where}', {error.message}."


class FakeGitHub:
    """GitHub's REST API for tests. Serve `app` with tests/servers.py:serving()."""

    def __init__(self, spec: Path = SUBSET):
        self.spec = Spec(spec)
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._user_ids: dict[str, int] = {}
        self._suites: dict[tuple[str, int], int] = {}
        self._faults: list[Fault] = []
        self.repos: dict[str, Repo] = {}  # lower-cased "owner/name"
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}  # installation tokens handed out
        self.user_tokens: dict[str, str] = {}  # personal access token -> login
        self.requests: list[Call] = []
        self.rate_limit = RateLimit()
        self.token_ttl = timedelta(hours=1)  # GitHub's installation tokens live an hour
        # GitHub's trees API lists at most 100,000 entries (or 7 MB) and then says
        # `truncated`; set it lower to stand for a repository that large.
        self.tree_limit = 100_000
        self.actions_app = App(15368, "github-actions", "GitHub Actions", "github", "")
        self.routes = [
            (method, self._route_pattern(template), name)
            for method, template, name in self.spec.routes()
        ]
        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        self.app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=methods)])

    # -- seeding --

    def add_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        files: Mapping[str, str | bytes] | None = None,
        private: bool = False,
    ) -> Repo:
        """A repository whose default branch holds `files` in one initial commit."""
        with self.lock:
            owner, name = full_name.split("/")
            repo = Repo(self, owner, name, default_branch, private)
            self.repos[full_name.lower()] = repo
            repo.push(default_branch, dict(files or {}), message="Initial commit")
            return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def add_app(
        self, app_id: int, public_key: str, *, slug: str = "phasegate", owner: str = "acme"
    ) -> App:
        """A GitHub App; `public_key` (PEM) verifies the JWTs signed with its private key."""
        with self.lock:
            app = App(app_id, slug, slug.replace("-", " ").title(), owner, public_key)
            self.apps[app_id] = app
            return app

    def add_installation(
        self,
        app_id: int,
        account: str,
        *,
        repositories: Iterable[str] | None = None,
        permissions: Mapping[str, str] | None = None,
        installation_id: int | None = None,
    ) -> Installation:
        """Install an App on `account` (all its repositories, or the named ones)."""
        with self.lock:
            installation = Installation(
                installation_id or self.new_id(),
                self.apps[app_id],
                account,
                list(repositories) if repositories is not None else None,
                dict(permissions or DEFAULT_PERMISSIONS),
            )
            self.installations[installation.id] = installation
            return installation

    def add_user_token(self, token: str, login: str) -> None:
        """A personal access token (reads and writes everything, but not the Checks API)."""
        with self.lock:
            self.user_tokens[token] = login

    # -- behaviour switches --

    def set_rate_limit(
        self, remaining: int, *, limit: int = 5000, reset_in: float = 3600, status: int = 403
    ) -> None:
        """Set the primary rate limit; at 0 requests answer `status` (403 or 429) until reset."""
        with self.lock:
            self.rate_limit = RateLimit(limit, remaining, math.ceil(time.time() + reset_in), status)

    def fail(
        self,
        target: str = "*",
        *,
        times: int = 1,
        status: int = 502,
        method: str | None = None,
        message: str = "Server Error",
        after: int = 0,
        applied: bool = False,
    ) -> None:
        """Answer the next `times` requests to `target` ("*", a path glob like "/repos/*/pulls/1",
        or an operationId like "checks/create") with a server error, once `after` of them
        have been answered as usual (the second page of a series of writes fails). With
        `applied` the request is carried out and only its answer is the error, as when GitHub
        times out after making what was asked (a 502 for a comment that was posted)."""
        body = {"message": message}
        with self.lock:
            self._faults.append(Fault(target, times, status, body, {}, method, after, applied))

    def secondary_rate_limit(
        self,
        target: str = "*",
        *,
        times: int = 1,
        retry_after: int | None = 60,
        status: int = 403,
        method: str | None = None,
    ) -> None:
        """Answer the next `times` requests with GitHub's secondary rate limit (403 or 429),
        with `Retry-After` unless it is None (GitHub does not always send it)."""
        body = {
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
            "before you try again. If you reach out to GitHub Support for help, please "
            "include the request ID 0000:0000:0000000:0000000:00000000.",
            "documentation_url": f"{RATE_LIMIT_DOCS}#about-secondary-rate-limits",
            "status": str(status),
        }
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        with self.lock:
            self._faults.append(Fault(target, times, status, body, headers, method))

    def expire_tokens(self) -> None:
        """Make every installation token handed out so far invalid (401 Bad credentials), as
        after its hour is up -- without the client's clock knowing."""
        with self.lock:
            for token in self.tokens.values():
                token.revoked = True

    # -- inspection --

    def calls(
        self, operation: str | None = None, *, method: str | None = None, path: str | None = None
    ) -> list[Call]:
        """Recorded requests, optionally only one operation, method or path glob."""
        with self.lock:
            return [
                call
                for call in self.requests
                if (operation is None or call.operation == operation)
                and (method is None or call.method == method.upper())
                and (path is None or fnmatch.fnmatchcase(call.path, path))
            ]

    def count(
        self, operation: str | None = None, *, method: str | None = None, path: str | None = None
    ) -> int:
        return len(self.calls(operation, method=method, path=path))

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- shared state helpers --

    def new_id(self) -> int:
        return next(self._ids)

    def user_id(self, login: str) -> int:
        if login not in self._user_ids:
            self._user_ids[login] = self.new_id()
        return self._user_ids[login]

    def suite_id(self, sha: str, app: App) -> int:
        key = (sha, app.id)
        if key not in self._suites:
            self._suites[key] = self.new_id()
        return self._suites[key]

    # -- HTTP --

    @staticmethod
    def _route_pattern(template: str) -> re.Pattern[str]:
        parts = re.split(r"\{(\w+)\}", template)
        pattern = ""
        for index, part in enumerate(parts):
            if index % 2 == 0:
                pattern += re.escape(part)
            elif part == "path":  # a file path may hold slashes
                pattern += f"(?P<{part}>.*)"
            elif part == "ref" and template.endswith("/git/ref/{ref}"):  # heads/feature/x
                pattern += f"(?P<{part}>.+)"
            elif part.endswith(("_id", "_number")):
                pattern += f"(?P<{part}>[0-9]+)"
            else:
                pattern += f"(?P<{part}>[^/]+)"
        return re.compile(pattern)

    async def _endpoint(self, request: Request) -> Response:
        raw_body = await request.body()
        with self.lock:
            reply = self._serve(request, raw_body)
        if reply.status == 304 or reply.body is None:
            content = b""
        else:
            content = json.dumps(reply.body, separators=(",", ":"), ensure_ascii=False).encode()
        return Response(
            content, reply.status, reply.headers, media_type="application/json; charset=utf-8"
        )

    def _serve(self, request: Request, raw_body: bytes) -> Reply:
        raw_path = request.scope["raw_path"].decode()
        prefix = "/api/v3" if raw_path == "/api/v3" or raw_path.startswith("/api/v3/") else ""
        web = f"{request.url.scheme}://{request.headers['host']}"
        shapes = Shapes(self, web + prefix, web)
        authorization = request.headers.get("authorization")
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body.decode(errors="replace")
        call = Call(
            method=request.method,
            path=raw_path[len(prefix) :] or "/",
            query=dict(parse_qsl(request.url.query, keep_blank_values=True)),
            headers={k: v for k, v in request.headers.items() if k != "authorization"},
            auth=authorization.split(" ", 1)[0] if authorization else None,
            body=body,
        )
        self.requests.append(call)
        docs = "https://docs.github.com/rest"
        try:
            reply = self._answer(call, request, shapes, authorization)
        except HttpError as error:
            if call.operation:
                docs = self.spec.operations[call.operation]["documentation_url"]
            reply = Reply(
                error.status,
                {
                    "message": error.message,
                    **({"errors": error.errors} if error.errors else {}),
                    "documentation_url": docs,
                    "status": str(error.status),
                },
                error.headers,
            )
        if call.counted and reply.status != 304:
            self.rate_limit.remaining -= 1
        else:
            call.counted = False
        call.status = reply.status
        reply.headers = {
            **self.rate_limit.headers(),
            "x-github-api-version-selected": API_VERSION,
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": secrets.token_hex(8).upper(),
            **reply.headers,
        }
        return reply

    def _answer(
        self, call: Call, request: Request, shapes: Shapes, authorization: str | None
    ) -> Reply:
        params = self._route(call)
        for fault in self._faults:
            if fault.times > 0 and fault.matches(call):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                if fault.applied:
                    self._respond(call, request, shapes, authorization, params)
                return Reply(fault.status, dict(fault.body), dict(fault.headers))
        return self._respond(call, request, shapes, authorization, params)

    def _respond(
        self,
        call: Call,
        request: Request,
        shapes: Shapes,
        authorization: str | None,
        params: dict[str, str] | None,
    ) -> Reply:
        if params is None or call.operation is None:
            raise HttpError(404, "Not Found")
        identity = self._authenticate(authorization)
        call.identity = str(identity)
        self.rate_limit.refill_if_due()
        if call.operation != "rate-limit/get":  # asking for the rate limit costs none
            if self.rate_limit.remaining <= 0:
                raise HttpError(
                    self.rate_limit.status,
                    f"API rate limit exceeded for {self._rate_subject(identity)}.",
                )
            call.counted = True
        handler, access = HANDLERS[call.operation]
        repo = self._authorize(call, identity, access, params)
        context = Context(
            shapes,
            call.operation,
            call.path,
            params,
            call.query,
            self._validate(call),
            identity,
            repo,
        )
        reply = handler(self, context)
        if call.method == "GET" and reply.status == 200:
            payload = json.dumps(reply.body, separators=(",", ":"), ensure_ascii=False)
            etag = f'W/"{hashlib.sha256(payload.encode()).hexdigest()}"'
            reply.headers["etag"] = etag
            wanted = request.headers.get("if-none-match", "")
            if etag.removeprefix("W/") in {
                tag.strip().removeprefix("W/") for tag in wanted.split(",")
            }:
                return Reply(304, None, {"etag": etag})
        return reply

    def _route(self, call: Call) -> dict[str, str] | None:
        for method, pattern, name in self.routes:
            match = pattern.fullmatch(call.path)
            if match and method == call.method:
                call.operation = name
                return {key: unquote(value) for key, value in match.groupdict().items()}
        return None

    def _rate_subject(self, identity: Identity) -> str:
        if identity.token:
            return f"installation ID {identity.token.installation.id}"
        if identity.app:
            return f"app ID {identity.app.id}"
        if identity.login:
            return f"user ID {self.user_id(identity.login)}"
        return (
            "127.0.0.1. (But here's the good news: Authenticated requests get a higher rate "
            "limit. Check out the documentation for more details.)"
        )

    def _authenticate(self, authorization: str | None) -> Identity:
        if not authorization:
            return Identity("anonymous")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential.count(".") == 2:
            return Identity("app", app=self._verify_jwt(credential))
        if scheme.lower() in ("token", "bearer"):
            token = self.tokens.get(credential)
            if token and not token.revoked and token.expires_at > datetime.now(UTC):
                return Identity("installation", token=token)
            if credential in self.user_tokens:
                return Identity("user", login=self.user_tokens[credential])
        raise HttpError(401, "Bad credentials")

    def _verify_jwt(self, credential: str) -> App:
        """GitHub's checks of an App JWT: RS256 by the App's key, `iss` its id, a live `exp`
        at most 10 minutes ahead, an `iat` not in the future."""
        undecodable = HttpError(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(credential, options={"verify_signature": False})
            app = self.apps.get(int(claims.get("iss", "")))
        except (jwt.InvalidTokenError, TypeError, ValueError):
            raise undecodable from None
        if app is None:
            raise undecodable
        try:
            jwt.decode(
                credential,
                app.public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat"]},
            )
        except jwt.InvalidTokenError:
            raise undecodable from None
        now = time.time()
        if not isinstance(claims["exp"], int) or claims["exp"] <= now:
            raise HttpError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the "
                "future time at which the assertion expires",
            )
        if claims["exp"] > now + 600:
            raise HttpError(401, "'Expiration time' claim ('exp') is too far in the future")
        if not isinstance(claims["iat"], int) or claims["iat"] > now:
            raise HttpError(
                401,
                "'Issued at' claim ('iat') must be an Integer representing the time that the "
                "assertion was issued",
            )
        return app

    def _authorize(
        self, call: Call, identity: Identity, access: Access, params: Mapping[str, str]
    ) -> Repo | None:
        if access.jwt and identity.kind != "app":
            raise HttpError(401, "A JSON web token could not be decoded")
        if identity.kind == "app" and not access.jwt and access.permissions:
            raise HttpError(403, "Resource not accessible by integration")
        repo = self.repos.get(f"{params.get('owner')}/{params.get('repo')}".lower())
        if "owner" in params and (repo is None or not self._can_see(identity, repo)):
            raise HttpError(404, "Not Found")
        if call.method != "GET" and identity.kind == "anonymous":
            raise HttpError(401, "Requires authentication")
        if access.apps_only and identity.kind == "user":
            raise HttpError(403, "You must authenticate via a GitHub App.")
        if identity.token and access.permissions:
            granted = identity.token.permissions
            if not any(
                granted.get(name) in (("write",) if level == "write" else ("read", "write"))
                for name, level in (option.split("=") for option in access.permissions)
            ):
                raise HttpError(
                    403,
                    "Resource not accessible by integration",
                    headers={"x-accepted-github-permissions": "; ".join(access.permissions)},
                )
        return repo

    def _can_see(self, identity: Identity, repo: Repo) -> bool:
        if identity.token:
            installation = identity.token.installation
            names = identity.token.repositories or installation.repositories
            return repo.owner == installation.account and (names is None or repo.name in names)
        return identity.kind in ("user", "app") or not repo.private

    def _validate(self, call: Call) -> Any:
        assert call.operation is not None
        entry = self.spec.operations[call.operation]
        body = call.body
        if isinstance(body, str):
            raise HttpError(400, "Problems parsing JSON")
        if "request_schema" not in entry:
            return body
        if call.operation == "issues/add-labels" and isinstance(body, list):
            # The spec's own description: "You can also pass an array of labels directly"
            # (PyGithub does), though its schema lists only the object form.
            body = {"labels": body}
        body = {} if body is None else body
        errors = sorted(
            self.spec.validators[call.operation].iter_errors(body), key=lambda e: list(e.path)
        )
        if errors:
            details = dict.fromkeys(describe(error) for error in errors)
            raise HttpError(422, "Invalid request.\n\n" + "\n".join(details))
        return body

    # -- operations --

    @operation("rate-limit/get")
    def _rate_limit(self, ctx: Context) -> Reply:
        body = ctx.shapes.example("rate-limit/get")
        core = {
            "limit": self.rate_limit.limit,
            "remaining": self.rate_limit.remaining,
            "reset": self.rate_limit.reset,
            "used": self.rate_limit.used,
        }
        body["resources"]["core"] = dict(core)
        body["rate"] = dict(core)
        return Reply(200, body)

    @operation("repos/get", "metadata=read")
    def _get_repo(self, ctx: Context) -> Reply:
        return Reply(200, ctx.shapes.repo(ctx.repository))

    @operation("repos/get-commit", "contents=read")
    def _get_commit(self, ctx: Context) -> Reply:
        sha = ctx.commit_sha(ctx.params["ref"])
        return Reply(200, ctx.shapes.commit(ctx.repository, ctx.repository.commits[sha]))

    @operation("repos/list-pull-requests-associated-with-commit", "contents=read")
    def _commit_pulls(self, ctx: Context) -> Reply:
        """GitHub's rule: the merged pull request that introduced a commit on the default
        branch; for a commit elsewhere, the open and merged pull requests that contain it."""
        repo = ctx.repository
        sha = ctx.commit_sha(ctx.params["commit_sha"])
        on_default = sha in set(repo._ancestry(repo.branches[repo.default_branch]))
        found = []
        for issue in repo.issues.values():
            pull = issue.pull
            if pull is None or (issue.state != "open" and not pull.merged):
                continue
            if on_default and not pull.merged:
                continue
            head = repo.branches[pull.head]
            if sha in set(repo._ancestry(head)) or pull.merge_commit_sha == sha:
                found.append(issue)
        page, headers = ctx.page(found)
        template = ctx.shapes.example("repos/list-pull-requests-associated-with-commit")
        shown = [ctx.shapes.pull(repo, issue, copy.deepcopy(template)) for issue in page]
        return Reply(200, shown, headers)

    @operation("repos/get-content", "contents=read")
    def _get_content(self, ctx: Context) -> Reply:
        repo = ctx.repository
        ref = ctx.query.get("ref") or repo.default_branch
        sha = repo.resolve(ref)
        if sha is None:
            raise HttpError(404, f"No commit found for the ref {ref}")
        path = ctx.params.get("path", "").strip("/")
        entry = repo.lookup(sha, path)
        if entry is None:
            raise HttpError(404, "Not Found")
        if entry.type == "blob":
            data = repo.commits[sha].files[path]
            return Reply(200, ctx.shapes.content(repo, path, entry, ref, data))
        listing = [
            ctx.shapes.content(repo, f"{path}/{child.name}".strip("/"), child, ref, None)
            for child in repo.trees[entry.sha]
        ]
        return Reply(200, listing)

    @operation("repos/create-or-update-file-contents", "contents=write")
    def _put_content(self, ctx: Context) -> Reply:
        """GitHub's rules: a new file needs no sha; replacing one needs the blob sha of the file
        being replaced (422 without it, 409 when it is not the current one)."""
        repo, body = ctx.repository, ctx.body
        branch = body.get("branch") or repo.default_branch
        if branch not in repo.branches:
            raise HttpError(404, f"Branch {branch} not found")
        path = ctx.params["path"].strip("/")
        existing = repo.lookup(repo.branches[branch], path)
        if existing is not None and existing.type == "tree":
            raise HttpError(422, f"{path} is a directory")
        if existing is not None and "sha" not in body:
            raise HttpError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        if existing is not None and body["sha"] != existing.sha:
            raise HttpError(409, f"{path} does not match {body['sha']}")
        try:
            data = base64.b64decode(body["content"], validate=True)
        except ValueError:
            raise HttpError(422, "content is not valid Base64") from None
        committer = (body.get("committer") or {}).get("name") or ctx.identity.actor
        sha = repo.push(branch, {path: data}, message=body["message"], author=committer)
        shown = ctx.shapes.file_commit(repo, path, branch, repo.commits[sha])
        return Reply(200 if existing is not None else 201, shown)

    @operation("git/get-ref", "contents=read")
    def _get_ref(self, ctx: Context) -> Reply:
        """A fully qualified name without ``refs/``: ``heads/<branch>`` (phasegate reads no
        tags, which the fake does not hold)."""
        name = ctx.params["ref"]
        branch = name.removeprefix("heads/")
        if not name.startswith("heads/") or branch not in ctx.repository.branches:
            raise HttpError(404, "Not Found")
        return Reply(200, ctx.shapes.ref(ctx.repository, branch))

    @operation("git/get-tree", "contents=read")
    def _get_tree(self, ctx: Context) -> Reply:
        repo, wanted = ctx.repository, ctx.params["tree_sha"]
        if wanted in repo.trees:
            sha = wanted
        elif commit := repo.resolve(wanted):
            sha = repo.commits[commit].tree
        else:
            raise HttpError(404, "Not Found")
        # The spec: "Setting this parameter to any value returns the objects or subtrees".
        return Reply(200, ctx.shapes.tree(repo, sha, recursive="recursive" in ctx.query))

    @operation("issues/list-for-repo", "issues=read", "pull_requests=read")
    def _list_issues(self, ctx: Context) -> Reply:
        repo, query = ctx.repository, ctx.query
        state = ctx.option("state")
        wanted = [
            name.strip().lower() for name in query.get("labels", "").split(",") if name.strip()
        ]
        since = ctx.since()
        issues = [
            issue
            for issue in repo.issues.values()
            if state in ("all", issue.state)
            and all(name in {label.lower() for label in issue.labels} for name in wanted)
            and (since is None or issue.updated_at >= since)
            and query.get("creator") in (None, issue.user)
        ]
        key = "updated_at" if ctx.option("sort") == "updated" else "created_at"
        issues.sort(key=lambda issue: (getattr(issue, key), issue.number))
        if ctx.option("direction") == "desc":
            issues.reverse()
        page, headers = ctx.page(issues)
        template = ctx.shapes.example("issues/list-for-repo")
        items = [ctx.shapes.issue(repo, issue, copy.deepcopy(template)) for issue in page]
        return Reply(200, items, headers)

    @operation("issues/get", "issues=read", "pull_requests=read")
    def _get_issue(self, ctx: Context) -> Reply:
        template = ctx.shapes.example("issues/get")
        return Reply(200, ctx.shapes.issue(ctx.repository, ctx.issue(), template))

    @operation("issues/list-labels-on-issue", "issues=read", "pull_requests=read")
    def _list_issue_labels(self, ctx: Context) -> Reply:
        repo = ctx.repository
        labels, headers = ctx.page(ctx.issue().labels)
        return Reply(200, [ctx.shapes.label(repo, repo.labels[n.lower()]) for n in labels], headers)

    @operation("issues/add-labels", "issues=write", "pull_requests=write")
    def _add_labels(self, ctx: Context) -> Reply:
        repo, issue = ctx.repository, ctx.issue()
        repo.set_labels(issue, ctx.body.get("labels", []))
        issue.updated_at = utcnow()
        return Reply(200, [ctx.shapes.label(repo, repo.labels[n.lower()]) for n in issue.labels])

    @operation("issues/remove-label", "issues=write", "pull_requests=write")
    def _remove_label(self, ctx: Context) -> Reply:
        repo, issue = ctx.repository, ctx.issue()
        name = ctx.params["name"].lower()
        present = [label for label in issue.labels if label.lower() == name]
        if not present:
            raise HttpError(404, "Label does not exist")
        issue.labels.remove(present[0])
        issue.updated_at = utcnow()
        return Reply(200, [ctx.shapes.label(repo, repo.labels[n.lower()]) for n in issue.labels])

    @operation("issues/list-labels-for-repo", "issues=read", "pull_requests=read")
    def _list_labels(self, ctx: Context) -> Reply:
        labels, headers = ctx.page(list(ctx.repository.labels.values()))
        return Reply(200, [ctx.shapes.label(ctx.repository, label) for label in labels], headers)

    @operation("issues/get-label", "issues=read", "pull_requests=read")
    def _get_label(self, ctx: Context) -> Reply:
        label = ctx.repository.labels.get(ctx.params["name"].lower())
        if label is None:
            raise HttpError(404, "Not Found")
        return Reply(200, ctx.shapes.label(ctx.repository, label))

    @operation("issues/create-label", "issues=write", "pull_requests=write")
    def _create_label(self, ctx: Context) -> Reply:
        repo, body = ctx.repository, ctx.body
        if body["name"].lower() in repo.labels:
            raise HttpError(
                422,
                "Validation Failed",
                errors=[{"resource": "Label", "code": "already_exists", "field": "name"}],
            )
        color = body.get("color", "ededed")
        if len(color) != 6 or any(c not in string.hexdigits for c in color):
            raise HttpError(
                422,
                "Validation Failed",
                errors=[{"resource": "Label", "code": "invalid", "field": "color"}],
            )
        label = repo.add_label(body["name"], color.lower(), body.get("description"))
        shown = ctx.shapes.label(repo, label)
        return Reply(201, shown, {"location": shown["url"]})

    @operation("issues/list-comments", "issues=read", "pull_requests=read")
    def _list_comments(self, ctx: Context) -> Reply:
        since = ctx.since()
        comments = [c for c in ctx.issue().comments if since is None or c.updated_at >= since]
        page, headers = ctx.page(comments)
        return Reply(200, [ctx.shapes.comment(ctx.repository, c) for c in page], headers)

    @operation("issues/create-comment", "issues=write", "pull_requests=write")
    def _create_comment(self, ctx: Context) -> Reply:
        issue = ctx.issue()
        self._check_comment_body(ctx.body["body"])
        moment = utcnow()
        comment = Comment(
            self.new_id(), issue.number, ctx.body["body"], ctx.identity.actor, moment, moment
        )
        issue.comments.append(comment)
        issue.updated_at = moment
        shown = ctx.shapes.comment(ctx.repository, comment)
        return Reply(201, shown, {"location": shown["url"]})

    @operation("issues/update-comment", "issues=write", "pull_requests=write")
    def _update_comment(self, ctx: Context) -> Reply:
        wanted = int(ctx.params["comment_id"])
        everything = (c for issue in ctx.repository.issues.values() for c in issue.comments)
        comment = next((c for c in everything if c.id == wanted), None)
        if comment is None:
            raise HttpError(404, "Not Found")
        self._check_comment_body(ctx.body["body"])
        comment.body, comment.updated_at = ctx.body["body"], utcnow()
        return Reply(200, ctx.shapes.comment(ctx.repository, comment))

    @staticmethod
    def _check_comment_body(body: str) -> None:
        if len(body) > 65536:
            raise HttpError(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "IssueComment",
                        "code": "unprocessable",
                        "field": "data",
                        "message": "Body is too long (maximum is 65536 characters)",
                    }
                ],
            )

    @operation("pulls/get", "pull_requests=read")
    def _get_pull(self, ctx: Context) -> Reply:
        return Reply(200, ctx.shapes.pull(ctx.repository, ctx.pull()))

    @operation("pulls/list-files", "pull_requests=read")
    def _list_pull_files(self, ctx: Context) -> Reply:
        repo, issue = ctx.repository, ctx.pull()
        assert issue.pull is not None
        head = repo.branches[issue.pull.head]
        page, headers = ctx.page(repo.pull_files(issue.pull))
        return Reply(200, [ctx.shapes.file_change(repo, change, head) for change in page], headers)

    @operation("pulls/list-reviews", "pull_requests=read")
    def _list_reviews(self, ctx: Context) -> Reply:
        issue = ctx.pull()
        assert issue.pull is not None
        page, headers = ctx.page(issue.pull.reviews)
        shown = [ctx.shapes.review(ctx.repository, issue.number, review) for review in page]
        return Reply(200, shown, headers)

    @operation("checks/list-for-ref", "checks=read")
    def _list_check_runs(self, ctx: Context) -> Reply:
        repo, query = ctx.repository, ctx.query
        sha = ctx.commit_sha(ctx.params["ref"])
        runs = sorted(repo.check_runs_for(sha), key=lambda run: run.id, reverse=True)
        if ctx.option("filter") == "latest":  # the newest run per name and App
            newest: dict[tuple[str, int], CheckRun] = {}
            for run in runs:
                newest.setdefault((run.name, run.app.id), run)
            runs = list(newest.values())
        runs = [
            run
            for run in runs
            if query.get("check_name") in (None, run.name)
            and query.get("status") in (None, run.status)
            and query.get("app_id") in (None, str(run.app.id))
        ]
        page, headers = ctx.page(runs)
        body = {
            "total_count": len(runs),
            "check_runs": [ctx.shapes.check_run(repo, run) for run in page],
        }
        return Reply(200, body, headers)

    @operation("checks/get", "checks=read")
    def _get_check_run(self, ctx: Context) -> Reply:
        run = ctx.repository.check_runs.get(int(ctx.params["check_run_id"]))
        if run is None:
            raise HttpError(404, "Not Found")
        return Reply(200, ctx.shapes.check_run(ctx.repository, run))

    @operation("checks/create", "checks=write", apps_only=True)
    def _create_check_run(self, ctx: Context) -> Reply:
        repo, body = ctx.repository, ctx.body
        assert ctx.identity.token is not None
        app = ctx.identity.token.installation.app
        sha = ctx.commit_sha(body["head_sha"])
        run = CheckRun(
            self.new_id(), body["name"], sha, app, self.suite_id(sha, app), started_at=utcnow()
        )
        self._apply_check_run(ctx, run, body)
        repo.check_runs[run.id] = run
        return Reply(201, ctx.shapes.check_run(repo, run))

    @operation("checks/update", "checks=write", apps_only=True)
    def _update_check_run(self, ctx: Context) -> Reply:
        run = ctx.repository.check_runs.get(int(ctx.params["check_run_id"]))
        if run is None:
            raise HttpError(404, "Not Found")
        assert ctx.identity.token is not None
        if run.app.id != ctx.identity.token.installation.app.id:
            raise HttpError(403, "Resource not accessible by integration")
        self._apply_check_run(ctx, run, ctx.body)
        return Reply(200, ctx.shapes.check_run(ctx.repository, run))

    def _apply_check_run(self, ctx: Context, run: CheckRun, body: Mapping[str, Any]) -> None:
        """Create/update semantics: a conclusion completes the run, annotations append."""
        output = body.get("output") or {}
        limit = self.spec.limit(ctx.operation, "output.summary", "maxLength")
        for name in ("summary", "text"):
            # GitHub also counts bytes, not only characters: 65,535 emoji do not fit.
            if len(output.get(name, "").encode()) > limit:
                raise HttpError(
                    422,
                    "Validation Failed",
                    errors=[
                        {
                            "resource": "CheckRun",
                            "code": "custom",
                            "field": name,
                            "message": f"{name} exceeds a maximum bytesize of {limit}",
                        }
                    ],
                )
        completing = body.get("status") == "completed" or "completed_at" in body
        if completing and "conclusion" not in body and run.conclusion is None:
            raise HttpError(422, 'Invalid request.\n\n"conclusion" wasn\'t supplied.')
        for key in ("name", "details_url", "external_id"):
            if key in body:
                setattr(run, key, body[key])
        if "status" in body:
            run.status = body["status"]
        if "started_at" in body:
            run.started_at = parse_time(body["started_at"])
        if "conclusion" in body:
            run.conclusion, run.status = body["conclusion"], "completed"
        if run.status == "completed":
            stamp = body.get("completed_at")
            run.completed_at = parse_time(stamp) if stamp else run.completed_at or utcnow()
        for key in ("title", "summary", "text"):
            if key in output:
                run.output[key] = output[key]
        run.annotations += output.get("annotations", [])
        run.actions = body.get("actions", run.actions)

    @operation("repos/create-commit-status", "statuses=write")
    def _create_status(self, ctx: Context) -> Reply:
        repo, body = ctx.repository, ctx.body
        sha = ctx.commit_sha(ctx.params["sha"])
        status = repo.add_status(
            sha,
            body["state"],
            body.get("context", "default"),
            description=body.get("description"),
            target_url=body.get("target_url"),
            creator=ctx.identity.actor,
        )
        template = ctx.shapes.example("repos/create-commit-status")
        shown = ctx.shapes.status(repo, status, template)
        return Reply(201, shown, {"location": shown["url"]})

    @operation("repos/get-combined-status-for-ref", "statuses=read")
    def _combined_status(self, ctx: Context) -> Reply:
        repo = ctx.repository
        sha = ctx.commit_sha(ctx.params["ref"])
        latest: dict[str, Status] = {}
        for status in sorted(repo.statuses_for(sha), key=lambda s: s.id, reverse=True):
            latest.setdefault(status.context.lower(), status)  # contexts ignore case
        states = {status.state for status in latest.values()}
        if states & {"error", "failure"}:
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        template = ctx.shapes.example("repos/get-combined-status-for-ref")
        item = template["statuses"][0]
        shown = [ctx.shapes.status(repo, s, copy.deepcopy(item)) for s in latest.values()]
        body = fill(
            template,
            state=state,
            statuses=shown,
            sha=sha,
            total_count=len(shown),
            repository=ctx.shapes.repo(repo, template["repository"]),
            commit_url=f"{ctx.shapes.repo_api(repo)}/commits/{sha}",
            url=f"{ctx.shapes.repo_api(repo)}/commits/{sha}/status",
        )
        return Reply(200, body)

    @operation("repos/list-commit-statuses-for-ref", "statuses=read")
    def _list_statuses(self, ctx: Context) -> Reply:
        repo = ctx.repository
        sha = ctx.commit_sha(ctx.params["ref"])
        statuses = sorted(repo.statuses_for(sha), key=lambda status: status.id, reverse=True)
        page, headers = ctx.page(statuses)
        template = ctx.shapes.example("repos/list-commit-statuses-for-ref")
        shown = [ctx.shapes.status(repo, s, copy.deepcopy(template)) for s in page]
        return Reply(200, shown, headers)

    @operation("apps/get-repo-installation", jwt=True)
    def _repo_installation(self, ctx: Context) -> Reply:
        repo = ctx.repository
        for installation in self.installations.values():
            names = installation.repositories
            if (
                installation.app is ctx.identity.app
                and installation.account == repo.owner
                and (names is None or repo.name in names)
            ):
                return Reply(200, ctx.shapes.installation(installation))
        raise HttpError(404, "Not Found")

    @operation("apps/create-installation-access-token", jwt=True)
    def _access_token(self, ctx: Context) -> Reply:
        installation = self.installations.get(int(ctx.params["installation_id"]))
        if installation is None or installation.app is not ctx.identity.app:
            raise HttpError(404, "Not Found")
        wanted_repos = ctx.body.get("repositories")
        allowed = installation.repositories
        if wanted_repos and allowed is not None and not set(wanted_repos) <= set(allowed):
            raise HttpError(
                422,
                "There is at least one repository that does not exist or is not "
                "accessible to the parent installation.",
            )
        permissions = ctx.body.get("permissions") or installation.permissions
        for name, level in permissions.items():
            if installation.permissions.get(name) not in (level, "write"):
                raise HttpError(
                    422, "The permissions requested are not granted to this installation."
                )
        alphabet = string.ascii_letters + string.digits
        token = Token(
            "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36)),
            installation,
            utcnow() + self.token_ttl,
            dict(permissions),
            list(wanted_repos) if wanted_repos else None,
        )
        self.tokens[token.token] = token
        body = fill(
            ctx.shapes.example("apps/create-installation-access-token"),
            token=token.token,
            expires_at=iso(token.expires_at),
            permissions=token.permissions,
            repository_selection="selected"
            if wanted_repos or installation.repositories is not None
            else "all",
        )
        if wanted_repos:
            repos = [
                self.repos.get(f"{installation.account}/{name}".lower()) for name in wanted_repos
            ]
            body["repositories"] = [ctx.shapes.repo(repo) for repo in repos if repo]
        else:
            body.pop("repositories", None)  # GitHub lists them only when asked for some
        return Reply(201, body)
