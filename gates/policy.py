"""The policy model: what team leads write in ``policies/*.yaml``.

Each YAML document declares its ``kind`` (Lifecycle, Gate, Roles, People, Project,
PolicyTest), so files can be split and named however a team likes. The models forbid unknown
keys: a typo such as ``allow_autor`` must be an error, never a silently ignored rule.
Cross-references (roles, phases, gates, check kinds, CEL) are checked by
:mod:`gates.loader`, which knows where each node sits in its file.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from functools import cached_property
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from gates.checks import KINDS
from gates.duration import Duration
from gates.evidence import Evidence, PathKey, cel_paths
from gates.records import Approval, Waiver

Id = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100),
    Field(description="Lowercase identifier: letters, digits, '-', '_' and '.'."),
]
Mode = Literal["enforce", "warn", "shadow"]
Status = Literal["passed", "blocked", "awaiting_approval", "error"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Phase(Strict):
    id: Id
    title: str | None = None
    description: str | None = None


class Transition(Strict):
    """A forward move, allowed only through a passed ``gate``."""

    from_: Id = Field(alias="from")
    to: Id
    gate: Id


class Regression(Strict):
    """Which event sends a project back, e.g. a firing drift alert in operation.

    ``when`` is a CEL expression over ``event`` (``event.source``, ``event.kind``,
    ``event.labels``, ``event.payload``); ``hold_down`` keeps a flapping alert from making
    the project bounce: the rule does not fire again within that time of its last firing.
    """

    id: Id
    when: str
    from_: list[Id] = Field(alias="from", min_length=1)
    to: Id
    hold_down: Duration = timedelta(hours=1)
    description: str | None = None


class Lifecycle(Strict):
    kind: Literal["Lifecycle"]
    initial: Id | None = Field(
        default=None, description="Phase of a new project; the first phase if unset."
    )
    phases: list[Phase] = Field(min_length=1)
    transitions: list[Transition] = []
    regressions: list[Regression] = []

    @property
    def initial_phase(self) -> str:
        return self.initial or self.phases[0].id

    def transition_from(self, phase: str) -> Transition | None:
        return next((t for t in self.transitions if t.from_ == phase), None)

    def transition_guarded_by(self, gate: str) -> Transition | None:
        return next((t for t in self.transitions if t.gate == gate), None)


class Check(Strict):
    """One node of a gate's check tree.

    A leaf is a built-in ``kind`` with parameters in ``with``, or a CEL ``expr``; a group is
    ``all``, ``any`` or ``not``. ``if`` (CEL) makes the node *skipped* when it does not apply,
    which the explanation keeps distinct from *failed*.
    """

    id: Id
    title: str | None = None
    hint: str | None = Field(default=None, description="How to fix it when it fails.")
    if_: str | None = Field(default=None, alias="if", description="CEL; false skips the check.")
    kind: str | None = Field(default=None, description="Built-in check kind (see gates/checks).")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    expr: str | None = Field(default=None, description="CEL expression that must be true.")
    expected: str | None = Field(default=None, description="What a CEL check expects, in words.")
    found: str | None = Field(
        default=None, description="CEL expression whose value is shown as found."
    )
    all: list[Check] | None = None
    any: list[Check] | None = None
    not_: Check | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _exactly_one_body(self) -> Check:
        bodies = [
            name
            for name, value in (
                ("kind", self.kind),
                ("expr", self.expr),
                ("all", self.all),
                ("any", self.any),
                ("not", self.not_),
            )
            if value is not None
        ]
        if len(bodies) != 1:
            found = ", ".join(bodies) if bodies else "none"
            raise ValueError(
                f"check '{self.id}' needs exactly one of kind, expr, all, any, not (found: {found})"
            )
        if self.with_ and self.kind is None:
            raise ValueError(f"check '{self.id}': 'with' only applies to a built-in 'kind'")
        if self.found is not None and self.expr is None:
            raise ValueError(f"check '{self.id}': 'found' only applies to an 'expr' check")
        return self

    @property
    def children(self) -> list[Check]:
        if self.all is not None:
            return self.all
        if self.any is not None:
            return self.any
        return [self.not_] if self.not_ is not None else []

    def walk(self) -> list[Check]:
        return [self, *(node for child in self.children for node in child.walk())]

    @cached_property
    def shown(self) -> dict[str, str | None]:
        """What every result of this check starts with: its id, title and hint."""
        title = self.title or (KINDS[self.kind].summary if self.kind in KINDS else self.id)
        return {"id": self.id, "title": title, "hint": self.hint}

    @cached_property
    def params(self) -> BaseModel | None:
        """Parameters of a built-in kind, validated once and reused by every evaluation."""
        return KINDS[self.kind].params.model_validate(self.with_) if self.kind else None

    @cached_property
    def reads(self) -> frozenset[PathKey]:
        """Evidence paths this check and everything under it read."""
        paths: set[PathKey] = set()
        for node in self.walk():
            for text in (node.if_, node.expr, node.found):
                if text:
                    paths |= cel_paths(text)
            if node.kind in KINDS:
                paths |= set(KINDS[node.kind].reads(node.params))
        return frozenset(paths)


class ApprovalRule(Strict):
    """``count`` distinct people holding any of ``roles`` must approve."""

    id: Id | None = None
    roles: list[Id] = Field(min_length=1)
    count: int = Field(default=1, ge=1)
    allow_author: bool = Field(
        default=False, description="May the author of the gated work (PR, model version) approve?"
    )
    expires_after: Duration | None = None
    invalidate_on_change: bool = Field(
        default=True,
        description="An approval stops counting when the evidence this gate reads changes.",
    )

    @property
    def name(self) -> str:
        return self.id or "+".join(self.roles)

    @cached_property
    def lacking(self) -> str:
        """Why an approver without any of the roles does not count: said for every approval
        and every rule it does not fit (and mostly dropped, when it fits another)."""
        return f"lacks role {' or '.join(self.roles)}"


class WaiverRule(Strict):
    roles: list[Id] = Field(min_length=1)
    checks: list[str] = Field(default=["*"], description="Check ids this rule covers; '*' = all.")
    max_duration: Duration = timedelta(days=30)

    def covers(self, check_id: str) -> bool:
        return "*" in self.checks or check_id in self.checks


class PullRequestMatch(Strict):
    """Which pull requests this gate checks (DSLP: ``model/<n>-…`` branches, Model label).

    A matching PR gets the gate as a check (``phasegate / <gate>``) on its head commit; the
    project advances only when the gate is also the one guarding its current phase.
    """

    branches: list[str] = Field(default_factory=list, description="Branch globs, e.g. model/*")
    labels: list[str] = Field(default_factory=list, description="Any of these labels matches.")

    def matches(self, branch: str, labels: list[str]) -> bool:
        wanted = {label.lower() for label in self.labels}
        return any(fnmatchcase(branch, glob) for glob in self.branches) or bool(
            wanted & {label.lower() for label in labels}
        )


class Reminders(Strict):
    """When a pending approval request is followed up: remind the people still asked, then
    also ask ``escalate_to``, then close the request (its buttons stop recording)."""

    remind_after: Duration | None = Field(default=None, description="e.g. 24h")
    escalate_after: Duration | None = Field(default=None, description="e.g. 72h")
    escalate_to: list[Id] = Field(default_factory=list, description="Roles asked on escalation.")
    expire_after: Duration | None = Field(default=None, description="e.g. 7d")

    @model_validator(mode="after")
    def _in_order(self) -> Reminders:
        steps = [
            (name, value)
            for name, value in (
                ("remind_after", self.remind_after),
                ("escalate_after", self.escalate_after),
                ("expire_after", self.expire_after),
            )
            if value is not None
        ]
        for (first, a), (then, b) in pairwise(steps):
            if b <= a:
                raise ValueError(f"{then} must be longer than {first}")
        if self.escalate_after is not None and not self.escalate_to:
            raise ValueError("escalate_after needs escalate_to: the roles to ask")
        return self


class Gate(Strict):
    kind: Literal["Gate"]
    id: Id
    title: str | None = None
    description: str | None = None
    mode: Mode = Field(
        default="enforce",
        description="enforce blocks; warn reports but never blocks; shadow is recorded only.",
    )
    checks: list[Check] = Field(min_length=1)
    approvals: list[ApprovalRule] = []
    waivers: list[WaiverRule] = []
    pull_requests: PullRequestMatch | None = None
    notify: list[Id] | None = Field(
        default=None,
        description="Roles told in Slack when the gate blocks, is rejected or lets the project "
        "advance; default: the roles of its approval rules.",
    )
    reminders: Reminders | None = None
    approval_dm: bool = Field(
        default=False,
        description="Also send each person asked to approve a Slack DM linking the request.",
    )

    @property
    def notified_roles(self) -> list[str]:
        if self.notify is not None:
            return self.notify
        return list(dict.fromkeys(r for rule in self.approvals for r in rule.roles))

    def nodes(self) -> list[Check]:
        return [node for check in self.checks for node in check.walk()]

    @cached_property
    def check_ids(self) -> frozenset[str]:
        return frozenset(node.id for node in self.nodes())

    @cached_property
    def reads(self) -> frozenset[PathKey]:
        """What approvals of this gate are bound to: a change elsewhere does not void them."""
        return frozenset().union(*(c.reads for c in self.checks))


class Role(Strict):
    id: Id
    description: str | None = None


class Roles(Strict):
    kind: Literal["Roles"]
    roles: list[Role] = Field(min_length=1)


class Person(Strict):
    id: Id
    name: str | None = None
    github: str | None = Field(default=None, description="GitHub login.")
    slack: str | None = Field(default=None, description="Slack user id, e.g. U012AB3CD.")
    email: str | None = None

    def identities(self) -> set[str]:
        ids = {self.id, self.github, self.slack, self.email}
        return {i.lower() for i in ids if i}


class People(Strict):
    kind: Literal["People"]
    people: list[Person] = Field(min_length=1)


class GithubRef(Strict):
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name")
    path: str | None = Field(default=None, description="Sub-path of the project in a monorepo.")
    tracking_issue: int | None = None


class MlflowRef(Strict):
    models: list[str] = Field(min_length=1, description="Registered model names.")
    champion_alias: str = "champion"


class SlackRef(Strict):
    channel: str


class Project(Strict):
    kind: Literal["Project"]
    key: Id
    title: str | None = None
    github: GithubRef | None = None
    mlflow: MlflowRef | None = None
    slack: SlackRef | None = None
    people: dict[Id, list[Id]] = Field(default_factory=dict, description="role id -> person ids")


class PolicySet(BaseModel):
    """A validated, cross-checked set of policy documents, and the hash it was loaded with."""

    lifecycle: Lifecycle
    gates: dict[str, Gate]
    roles: dict[str, Role]
    people: dict[str, Person]
    projects: dict[str, Project]
    policy_hash: str

    @cached_property
    def _by_identity(self) -> dict[str, Person]:
        return {identity: p for p in self.people.values() for identity in p.identities()}

    def person(self, identity: str) -> Person | None:
        """Find a person by id, GitHub login, Slack id or email (case-insensitive)."""
        return self._by_identity.get(identity.lower())

    def holders(self, project: str, role: str) -> list[Person]:
        return [self.people[i] for i in self.holder_ids(project, role)]

    def holder_ids(self, project: str, role: str) -> tuple[str, ...]:
        """Ids of the people holding ``role`` in ``project``, in the order the project lists
        them (asked on every evaluation: looked up, not rebuilt)."""
        return self._holders.get((project, role), ())

    @cached_property
    def _holders(self) -> dict[tuple[str, str], tuple[str, ...]]:
        return {
            (key, role): tuple(i for i in ids if i in self.people)
            for key, project in self.projects.items()
            for role, ids in project.people.items()
        }

    @cached_property
    def _roles(self) -> dict[tuple[str, str], frozenset[str]]:
        held: dict[tuple[str, str], set[str]] = {}
        for key, project in self.projects.items():
            for role, ids in project.people.items():
                for person in ids:
                    held.setdefault((key, person), set()).add(role)
        return {k: frozenset(v) for k, v in held.items()}

    def roles_of(self, project: str, person_id: str) -> frozenset[str]:
        return self._roles.get((project, person_id), frozenset())

    def gates_for_pull_request(self, branch: str, labels: list[str]) -> list[Gate]:
        return [
            g
            for g in self.gates.values()
            if g.pull_requests and g.pull_requests.matches(branch, labels)
        ]


class Scenario(Strict):
    """Evidence plus the approvals and waivers given on it: a "what if" for one gate.

    The CLI's ``check --evidence`` reads it, ``examples/`` ship it and policy tests reuse it.
    """

    gate: Id | None = None
    now: datetime | None = Field(default=None, description="Evaluation time; default: now.")
    evidence: Evidence
    approvals: list[Approval] = []
    waivers: list[Waiver] = []


class Expectation(Strict):
    status: Status
    failing: list[str] | None = Field(
        default=None, description="Exactly these check ids fail or error (omit to not compare)."
    )


class PolicyCase(Strict):
    """A case of a policy test: a scenario (inline or a file) and the decision it must get."""

    name: str
    scenario: str | None = Field(
        default=None, description="Scenario JSON/YAML, relative to this file."
    )
    evidence: Evidence | None = None
    approvals: list[Approval] | None = None
    waivers: list[Waiver] | None = None
    now: datetime | None = None
    expect: Expectation

    @model_validator(mode="after")
    def _one_source(self) -> PolicyCase:
        if (self.scenario is None) == (self.evidence is None):
            raise ValueError(f"case '{self.name}' needs exactly one of 'scenario' or 'evidence'")
        return self


class PolicyTest(Strict):
    kind: Literal["PolicyTest"]
    gate: Id
    project: Id | None = None
    cases: list[PolicyCase] = Field(min_length=1)
