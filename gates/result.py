"""The result of evaluating one gate: one tree that every surface renders.

The GitHub check summary, the Slack message, the CLI and the status page all show this same
value, so a user never sees two different stories about one decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from gates.policy import Mode, Status

Outcome = Literal["passed", "failed", "skipped", "waived", "error"]


class FileLine(BaseModel):
    path: str
    line: int


class WaiverNote(BaseModel):
    person: str
    reason: str
    expires_at: datetime


class CheckResult(BaseModel):
    id: str
    title: str
    outcome: Outcome
    expected: str
    found: str
    hint: str | None = None
    source: str | None = None
    location: FileLine | None = None
    waiver: WaiverNote | None = None
    children: list[CheckResult] = Field(default_factory=list)

    def walk(self) -> list[CheckResult]:
        return [self, *(node for child in self.children for node in child.walk())]


class Ignored(BaseModel):
    """An approval, rejection or waiver that was given but does not count, and why."""

    person: str
    reason: str


class RuleResult(BaseModel):
    rule: str
    roles: list[str]
    required: int
    approvers: list[str]
    candidates: list[str]

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approvers))


class Rejection(BaseModel):
    person: str
    reason: str
    at: datetime


class GateResult(BaseModel):
    project: str
    gate: str
    title: str
    mode: Mode
    status: Status
    checks: list[CheckResult]
    approvals: list[RuleResult] = []
    rejections: list[Rejection] = []
    ignored: list[Ignored] = []
    evidence_digest: str
    gate_digest: str
    evaluated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def blocking(self) -> bool:
        """Whether this result holds the project back: only an enforced gate ever does."""
        return self.mode == "enforce" and self.status != "passed"

    def nodes(self) -> list[CheckResult]:
        return [node for check in self.checks for node in check.walk()]

    def failing(self) -> list[CheckResult]:
        """The checks that decide a failure: failed/errored leaves under failed groups, or the
        group itself when no child explains it (a ``not`` whose child passed)."""

        def decisive(node: CheckResult) -> list[CheckResult]:
            if node.outcome not in ("failed", "error"):
                return []
            inner = [found for child in node.children for found in decisive(child)]
            return inner or [node]

        return [found for check in self.checks for found in decisive(check)]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        leaves = [n for n in self.nodes() if not n.children]
        counted = [n for n in leaves if n.outcome != "skipped"]
        ok = sum(n.outcome in ("passed", "waived") for n in counted)
        text = f"{ok} of {len(counted)} checks passed"
        waived = sum(n.outcome == "waived" for n in counted)
        if waived:
            text += f" ({waived} waived)"
        if self.status == "error":
            errors = sum(n.outcome == "error" for n in leaves)
            return f"could not decide: {errors} check(s) errored; {text}"
        if self.rejections:
            names = ", ".join(r.person for r in self.rejections)
            return f"rejected by {names}; {text}"
        if self.status == "blocked":
            return f"blocked: {len(counted) - ok} check(s) failed; {text}"
        if self.status == "awaiting_approval":
            wanted = ", ".join(
                f"{r.missing} more from {'/'.join(r.roles)}" for r in self.approvals if r.missing
            )
            return f"awaiting approval: {wanted}; {text}"
        return f"passed: {text}"
