"""Evaluation: a pure function from a gate, evidence, approvals, waivers and a time to a result.

No I/O and no clock: ``now`` is an argument, so the same inputs always give the same result,
which is what makes a decision reproducible from the store and testable without servers.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from gates import cel
from gates.checks import KINDS
from gates.evidence import Evidence, PathKey, cel_paths, gate_digest, resolve, source_for
from gates.policy import ApprovalRule, Check, Gate, Person, PolicySet, Status
from gates.records import Approval, SentBack, Waiver
from gates.result import (
    CheckResult,
    FileLine,
    GateResult,
    Ignored,
    Outcome,
    Rejection,
    RuleResult,
    WaiverNote,
)


def _show(value: Any, limit: int = 80) -> str:
    """A short rendering of a found value; large collections are counted, not dumped."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and len(value) > 3:
        text = f"[{len(value)} items]"
    elif isinstance(value, dict) and len(value) > 4:
        text = "{" + ", ".join(sorted(map(str, value))[:4]) + ", …}"
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@lru_cache(maxsize=4096)
def _sorted_paths(expr: str) -> tuple[PathKey, ...]:
    return tuple(sorted(cel_paths(expr)))


def _cel_found(expr: str, data: dict[str, Any]) -> str:
    """The values of the evidence an expression mentions: the 'found' of a CEL check."""
    shown: dict[str, str] = {}
    for path in _sorted_paths(expr):
        followed, value = resolve(data, path)
        name = followed[0] + "".join(
            f".{k}" if k.isidentifier() else f'["{k}"]' for k in followed[1:]
        )
        shown.setdefault(name, f"{name} = {_show(value)}")
    return "; ".join(shown.values()) or "false"


class _Evaluator:
    def __init__(self, gate: Gate, evidence: Evidence, waivers: dict[str, WaiverNote]) -> None:
        self.gate = gate
        self.evidence = evidence
        self.data = evidence.data
        self.bound = evidence.memo.get("cel") or evidence.memo.setdefault(
            "cel", cel.bind(self.data)
        )
        self.waivers = waivers

    def check(self, node: Check) -> CheckResult:
        title = node.title or (KINDS[node.kind].summary if node.kind in KINDS else node.id)
        base = {"id": node.id, "title": title, "hint": node.hint}
        if not node.children and (down := self._unavailable(node)):
            return CheckResult(
                **base, outcome="error", expected="its evidence to be readable", found=down
            )
        if node.if_ is not None:
            applies = cel.run_bool(node.if_, self.bound)
            if applies.error:
                return CheckResult(
                    **base,
                    outcome="error",
                    expected=f"`if: {node.if_}` to evaluate",
                    found=f"error: {applies.error}",
                )
            if not applies.value:
                return CheckResult(
                    **base,
                    outcome="skipped",
                    expected=f"applies when {node.if_}",
                    found="does not apply",
                )
        result = self._body(node, base)
        waiver = self.waivers.get(node.id)
        if waiver and result.outcome in ("failed", "error"):
            return result.model_copy(update={"outcome": "waived", "waiver": waiver})
        return result

    def _unavailable(self, node: Check) -> str | None:
        """Why a check cannot be decided: a source it reads was down (not a failed check)."""
        down = self.evidence.unavailable
        roots = sorted({path[0] for path in node.reads} & down.keys()) if down else []
        return "; ".join(f"{root} could not be read: {down[root]}" for root in roots) or None

    def _body(self, node: Check, base: dict[str, Any]) -> CheckResult:
        if node.kind is not None:
            finding = KINDS[node.kind].run(node.params, self.evidence)
            location = (
                FileLine(path=finding.location.path, line=finding.location.line)
                if finding.location
                else None
            )
            return CheckResult(
                **base,
                outcome="passed" if finding.ok else "failed",
                expected=finding.expected,
                found=finding.found,
                source=finding.source,
                location=location,
            )
        if node.expr is not None:
            return self._expr(node, base)
        children = [self.check(child) for child in node.children]
        outcome = _combine(node, [c.outcome for c in children])
        if node.not_ is not None:
            expected, found = f"not: {children[0].expected}", children[0].found
        else:
            word = "all" if node.all is not None else "any"
            expected = f"{word} of {len(children)} checks"
            tally = {
                o: sum(c.outcome == o for c in children) for o in ("passed", "failed", "error")
            }
            found = ", ".join(f"{n} {o}" for o, n in tally.items() if n) or "all skipped"
        return CheckResult(
            **base, outcome=outcome, expected=expected, found=found, children=children
        )

    def _expr(self, node: Check, base: dict[str, Any]) -> CheckResult:
        assert node.expr is not None
        expected = node.expected or f"{node.expr}"
        source = next(
            (s for p in _sorted_paths(node.expr) if (s := source_for(self.data, p))), None
        )
        outcome = cel.run_bool(node.expr, self.bound)
        if outcome.error:
            return CheckResult(
                **base,
                outcome="error",
                expected=expected,
                found=f"error: {outcome.error}",
                source=source,
            )
        if node.found is not None:
            shown = cel.run(node.found, self.bound)
            found = f"error: {shown.error}" if shown.error else _show(shown.value)
        else:
            found = _cel_found(node.expr, self.data)
        return CheckResult(
            **base,
            outcome="passed" if outcome.value else "failed",
            expected=expected,
            found=found,
            source=source,
        )


def _combine(node: Check, outcomes: list[Outcome]) -> Outcome:
    counted = [o for o in outcomes if o != "skipped"]
    if not counted:
        return "skipped"
    good = [o in ("passed", "waived") for o in counted]
    if node.not_ is not None:
        return counted[0] if counted[0] == "error" else ("failed" if good[0] else "passed")
    if node.all is not None:
        if "failed" in counted:
            return "failed"
        return "error" if "error" in counted else "passed"
    if any(good):
        return "passed"
    return "error" if "error" in counted else "failed"


def _valid_waivers(
    gate: Gate, project: str, waivers: list[Waiver], now: datetime, policies: PolicySet
) -> tuple[dict[str, WaiverNote], list[Ignored]]:
    granted: dict[str, WaiverNote] = {}
    ignored: list[Ignored] = []
    for waiver in waivers:
        person = policies.person(waiver.person)
        roles = policies.roles_of(project, person.id) if person else set()
        rules = [r for r in gate.waivers if r.covers(waiver.check) and roles.intersection(r.roles)]
        if person is None:
            why = f"unknown person '{waiver.person}'"
        elif waiver.check not in gate.check_ids:
            why = f"gate {gate.id} has no check '{waiver.check}'"
        elif not rules:
            allowed = sorted(
                {r for rule in gate.waivers if rule.covers(waiver.check) for r in rule.roles}
            )
            why = (
                f"may not waive '{waiver.check}' (needs role {' or '.join(allowed)})"
                if allowed
                else f"gate {gate.id} allows no waiver of '{waiver.check}'"
            )
        elif not waiver.reason.strip():
            why = "a waiver needs a reason"
        elif not waiver.at <= now < waiver.expires_at:
            why = f"waiver of '{waiver.check}' expired {waiver.expires_at:%Y-%m-%d %H:%M}Z"
        elif all(waiver.expires_at - waiver.at > r.max_duration for r in rules):
            why = f"waiver of '{waiver.check}' lasts longer than the policy allows"
        else:
            granted[waiver.check] = WaiverNote(
                person=person.id, reason=waiver.reason, expires_at=waiver.expires_at
            )
            continue
        ignored.append(Ignored(person=waiver.person, reason=why))
    return granted, ignored


def _disqualified(
    rule: ApprovalRule,
    person: Person,
    approval: Approval,
    roles: set[str],
    authors: set[str],
    digest: str,
    now: datetime,
    sent_back: SentBack | None,
) -> str | None:
    """Why an approval does not count towards a rule, or None when it does."""
    if not roles.intersection(rule.roles):
        return f"lacks role {' or '.join(rule.roles)}"
    if person.id in authors and not rule.allow_author:
        return "is the author of the gated work and may not approve it"
    if approval.at > now:
        return "approval is dated in the future"
    if sent_back is not None and approval.at < sent_back.at:
        return (
            f"given before the project was sent back to {sent_back.to_phase} "
            f"on {sent_back.at:%Y-%m-%d %H:%M}Z"
        )
    if rule.expires_after is not None and now - approval.at > rule.expires_after:
        return f"approval expired (older than {rule.expires_after})"
    if rule.invalidate_on_change and approval.digest != digest:
        given = (approval.digest or "none")[:12]
        return f"approval was given on evidence {given}; it changed since (now {digest[:12]})"
    return None


def _approvals(
    gate: Gate,
    project: str,
    evidence: Evidence,
    approvals: list[Approval],
    digest: str,
    now: datetime,
    policies: PolicySet,
    sent_back: SentBack | None,
) -> tuple[list[RuleResult], list[Rejection], list[Ignored]]:
    authors = {p.id for name in evidence.authors if (p := policies.person(name))}
    latest: dict[str, tuple[Person, Approval]] = {}
    ignored: list[Ignored] = []
    for approval in sorted(approvals, key=lambda a: a.at):
        person = policies.person(approval.person)
        if person is None:
            ignored.append(
                Ignored(person=approval.person, reason=f"unknown person '{approval.person}'")
            )
        else:
            latest[person.id] = (person, approval)
    held = {person_id: policies.roles_of(project, person_id) for person_id in latest}
    rules, rejections, reasons = [], [], {}
    for rule in gate.approvals:
        approvers = []
        for person, approval in latest.values():
            roles = held[person.id]
            why = _disqualified(rule, person, approval, roles, authors, digest, now, sent_back)
            if why is None and approval.decision == "approve":
                approvers.append(person.id)
            elif why is None:
                rejections.append(
                    Rejection(
                        person=person.id,
                        reason=approval.reason or "no reason given",
                        at=approval.at,
                    )
                )
            elif person.id not in reasons or roles.intersection(rule.roles):
                # The reason from a rule the person could satisfy says more than "lacks role".
                reasons[person.id] = why
        candidates = [
            p.id
            for role in rule.roles
            for p in policies.holders(project, role)
            if p.id not in approvers and (rule.allow_author or p.id not in authors)
        ]
        rules.append(
            RuleResult(
                rule=rule.name,
                roles=rule.roles,
                required=rule.count,
                approvers=approvers,
                candidates=list(dict.fromkeys(candidates)),
            )
        )
    counted = {p for r in rules for p in r.approvers} | {r.person for r in rejections}
    ignored += [Ignored(person=p, reason=why) for p, why in reasons.items() if p not in counted]
    unique_rejections = list({r.person: r for r in rejections}.values())
    return rules, unique_rejections, ignored


def evaluate(
    gate: Gate,
    evidence: Evidence,
    approvals: list[Approval],
    waivers: list[Waiver],
    now: datetime,
    policies: PolicySet,
    *,
    sent_back: SentBack | None = None,
) -> GateResult:
    """Decide one gate for the project the evidence is about.

    ``policies`` supplies who holds which role in the project; it is read, never changed.
    ``sent_back``: the project's last regression; decisions given before it do not count.
    """
    project = evidence.project.key
    digest = gate_digest(evidence, gate.reads)
    granted, ignored_waivers = _valid_waivers(gate, project, waivers, now, policies)
    evaluator = _Evaluator(gate, evidence, granted)
    checks = [evaluator.check(c) for c in gate.checks]
    rules, rejections, ignored = _approvals(
        gate, project, evidence, approvals, digest, now, policies, sent_back
    )
    outcomes = [c.outcome for c in checks]
    status: Status
    if "error" in outcomes:
        status = "error"
    elif "failed" in outcomes or rejections:
        status = "blocked"
    elif any(r.missing for r in rules):
        status = "awaiting_approval"
    else:
        status = "passed"
    return GateResult(
        project=project,
        gate=gate.id,
        title=gate.title or gate.id,
        mode=gate.mode,
        status=status,
        checks=checks,
        approvals=rules,
        rejections=rejections,
        ignored=ignored + ignored_waivers,
        evidence_digest=evidence.digest,
        gate_digest=digest,
        evaluated_at=now,
    )
