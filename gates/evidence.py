"""The evidence snapshot: every fact a gate may read, as one JSON-serialisable value.

Collectors in ``integrations/`` fill it; :func:`gates.evaluate.evaluate` only reads it. Facts
that live somewhere a person can look (an issue, a file, a run, an alert) carry that place's
``url``, so every explanation can point at it. The digest is what approvals are bound to, so
it must change exactly when the facts do. The order of keys does not matter, nor the order
in which sources that contribute different facts were merged (:func:`assemble`; where two
give the same fact the later wins). The order of a list is part of the facts and of the
digest, so collectors emit lists in a deterministic order (issues by number, files by path),
or collecting the same facts again would void every approval.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Hashable, Iterable
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ROOTS = ("project", "subject", "github", "files", "mlflow", "monitoring", "ask", "extra")
"""Top-level names of the snapshot; CEL expressions see exactly these variables."""

PathKey = tuple[str, ...]


class Fact(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Checkbox(Fact):
    text: str
    checked: bool


class Issue(Fact):
    """A DSLP issue (Ask, Data, Experiment, Model, ...) parsed into sections."""

    number: int
    title: str = ""
    url: str | None = None
    state: Literal["open", "closed"] = "open"
    author: str | None = None
    labels: list[str] = []
    sections: dict[str, str] = Field(default_factory=dict, description="heading -> text")
    template: dict[str, str] = Field(
        default_factory=dict, description="heading -> the repo template's placeholder text"
    )
    checkboxes: list[Checkbox] = []
    links: list[int] = Field(default_factory=list, description="Issue numbers this issue links.")


class Review(Fact):
    """A reviewer's standing on a pull request, as GitHub counts it: their latest approval or
    request for changes (a later comment does not undo either; a dismissal does), else
    COMMENTED."""

    author: str
    state: Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED"]
    submitted_at: datetime | None = None
    url: str | None = None
    commit: str | None = Field(default=None, description="The head commit that was reviewed.")


class PullRequest(Fact):
    number: int
    title: str = ""
    url: str | None = None
    author: str | None = None
    branch: str = ""
    base: str = ""
    head_sha: str = ""
    labels: list[str] = []
    files_changed: list[str] = Field(
        default=[], description="Read only when a check names files_changed."
    )
    reviews: list[Review] = Field(
        default=[], description="One per reviewer; read only when a check names reviews."
    )
    draft: bool = False
    merged: bool = False


class CiCheck(Fact):
    """A check run or commit status on the gated commit."""

    name: str
    status: Literal["queued", "in_progress", "completed", "pending"] = "completed"
    conclusion: str | None = None
    url: str | None = None


class GithubEvidence(Fact):
    repo: str | None = None
    url: str | None = None
    issues: list[Issue] = []
    pull_request: PullRequest | None = None
    checks: list[CiCheck] = []


class File(Fact):
    """A file of the project's repository at the gated ref (content may be omitted)."""

    path: str
    exists: bool = True
    content: str | None = None
    url: str | None = None


class ModelVersion(Fact):
    name: str
    version: str
    status: str = Field(
        description="MLflow status: PENDING_REGISTRATION, READY, FAILED_REGISTRATION"
    )
    url: str | None = None
    run_id: str | None = None
    user_id: str | None = None
    aliases: list[str] = []
    tags: dict[str, str] = {}
    signature: dict[str, Any] | None = Field(
        default=None, description="The MLmodel signature: {'inputs': [...], 'outputs': [...]}"
    )
    has_input_example: bool = False
    flavors: list[str] = []
    environment: list[str] = Field(
        default_factory=list,
        description="Environment spec files: conda.yaml, requirements.txt, ...",
    )


class Run(Fact):
    id: str
    url: str | None = None
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    tags: dict[str, str] = {}


class Champion(Fact):
    """The version behind the champion alias, which a candidate must beat."""

    version: str
    url: str | None = None
    metrics: dict[str, float] = {}


class MlflowEvidence(Fact):
    model: str | None = None
    version: ModelVersion | None = None
    run: Run | None = None
    champion: Champion | None = None


class Signal(Fact):
    """A monitoring heartbeat, report or alert that reached phasegate."""

    kind: Literal["heartbeat", "report", "alert"]
    received_at: datetime
    url: str | None = None
    status: str | None = None
    model: str | None = None
    summary: dict[str, Any] = {}


class Alert(Fact):
    name: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = {}
    starts_at: datetime | None = None
    url: str | None = None


class MonitoringEvidence(Fact):
    signals: list[Signal] = []
    alerts: list[Alert] = []


class PrimaryMetric(Fact):
    name: str
    threshold: float
    direction: Literal["higher", "lower"] = "higher"


class AskEvidence(Fact):
    """What the Ask issue committed to; later gates measure the model against it."""

    issue: int | None = None
    url: str | None = None
    primary_metric: PrimaryMetric | None = None


class ProjectEvidence(Fact):
    key: str
    phase: str | None = None
    models: list[str] = []


class Subject(Fact):
    """The thing being gated (a PR, a model version); its author may not approve by default."""

    kind: str
    url: str | None = None
    author: str | None = None
    ref: str | None = None


class Evidence(Fact):
    project: ProjectEvidence
    subject: Subject | None = None
    github: GithubEvidence = GithubEvidence()
    files: dict[str, File] = Field(default_factory=dict, description="path -> file")
    mlflow: MlflowEvidence = MlflowEvidence()
    monitoring: MonitoringEvidence = MonitoringEvidence()
    ask: AskEvidence = AskEvidence()
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Facts from custom sources, for CEL checks."
    )
    unavailable: dict[str, str] = Field(
        default_factory=dict,
        description="Root (e.g. mlflow) -> why its source could not be read; checks that read "
        "it are `error`, never `failed` on missing facts.",
    )
    collected_at: datetime | None = Field(default=None, description="Not part of the digest.")

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Evidence:
        """A copy whose snapshot and digest are recomputed (pydantic would copy the cache)."""
        copy = super().model_copy(update=update, deep=deep)
        for cached in ("data", "digest", "memo"):
            copy.__dict__.pop(cached, None)
        return copy

    @cached_property
    def data(self) -> dict[str, Any]:
        """The snapshot as plain JSON values: what CEL sees and what digests are taken over."""
        return self.model_dump(mode="json", exclude={"collected_at"})

    @cached_property
    def digest(self) -> str:
        return _sha256(self.data)

    @cached_property
    def memo(self) -> dict[Hashable, Any]:
        """Values derived from this snapshot (gate digests, the CEL binding), made once each:
        an event re-evaluates several gates over one snapshot."""
        return {}

    @property
    def authors(self) -> list[str]:
        """Who made the gated work, as the sources name them: the pull request's author and
        the person who registered (or trained) the model version. The author rule of an
        approval applies to each: registering a model does not entitle one to approve it."""
        named = [
            self.subject.author if self.subject else None,
            self.mlflow.version and self.mlflow.version.user_id,
        ]
        return list(dict.fromkeys(n for n in named if n))

    def issues_labelled(self, label: str) -> list[Issue]:
        """The issues with a label (any case), in snapshot order; indexed once per snapshot,
        since every gate asks for its labels again."""
        index = self.memo.get("labels")
        if index is None:
            index = {}
            for issue in self.github.issues:
                for name in dict.fromkeys(lbl.lower() for lbl in issue.labels):
                    index.setdefault(name, []).append(issue)
            self.memo["labels"] = index
        return list(index.get(label.lower(), ()))

    def issue(self, number: int) -> Issue | None:
        return next((i for i in self.github.issues if i.number == number), None)


def assemble(project: ProjectEvidence, fragments: Iterable[dict[str, Any]]) -> Evidence:
    """One snapshot from the fragments sources returned: sections merge key by key, so two
    sources may each contribute, say, ``github.issues`` and ``github.checks``."""
    merged: dict[str, Any] = {}
    for fragment in fragments:
        _merge(merged, fragment)
    merged["project"] = project.model_dump()
    return Evidence.model_validate(merged)


def _merge(into: dict[str, Any], fragment: dict[str, Any]) -> None:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _sha256(value: Any) -> str:
    canonical = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
    )  # plain JSON values from model_dump: no cycles to look for
    return hashlib.sha256(canonical.encode()).hexdigest()


def resolve(data: Any, path: PathKey) -> tuple[PathKey, Any]:
    """Follow ``path`` as far as the data goes; return the part followed and the value there.

    Stopping early (at a list, a scalar, or a method name in a CEL path such as
    ``github.issues.exists``) makes the digest cover the whole value the path reaches into.
    """
    followed, value, _ = follow(data, path)
    return followed, value


def gate_digest(evidence: Evidence, paths: Iterable[PathKey]) -> str:
    """Digest of just the evidence a gate reads: approvals are bound to it."""
    key = ("gate_digest", frozenset(paths))
    if key not in evidence.memo:
        picked = dict(resolve(evidence.data, p) for p in key[1])
        evidence.memo[key] = _sha256({"/".join(k): v for k, v in sorted(picked.items())})
    return evidence.memo[key]


def follow(data: Any, path: PathKey) -> tuple[PathKey, Any, str | None]:
    """:func:`resolve`, and the ``url`` of the deepest fact along ``path`` that has one: a CEL
    check shows both, for each path it mentions, so the path is walked once."""
    url = data.get("url") if isinstance(data, dict) else None
    for depth, key in enumerate(path):
        if not isinstance(data, dict):
            return path[:depth], data, url
        data = data.get(key)
        if isinstance(data, dict) and data.get("url"):
            url = data["url"]
    return path, data, url


_CEL_PATH = re.compile(
    r"\b(" + "|".join(ROOTS) + r")((?:\s*\.\s*[A-Za-z_]\w*|\s*\[\s*(?:\"[^\"]*\"|'[^']*')\s*\])*)"
)
_CEL_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_CEL_STEP = re.compile(r"\.\s*([A-Za-z_]\w*)|\[\s*(?:\"([^\"]*)\"|'([^']*)')\s*\]")


@lru_cache(maxsize=4096)
def cel_paths(expression: str) -> frozenset[PathKey]:
    """Evidence paths a CEL expression mentions, e.g. ``mlflow.run.metrics["auc"]``."""
    strings = [m.span() for m in _CEL_STRING.finditer(expression)]
    paths = set()
    for match in _CEL_PATH.finditer(expression):
        if any(start <= match.start() < end for start, end in strings):
            continue  # a word inside a string literal, not a variable
        steps = [
            next(s for s in step.groups() if s is not None)
            for step in _CEL_STEP.finditer(match.group(2))
        ]
        paths.add((match.group(1), *steps))
    return frozenset(paths)
