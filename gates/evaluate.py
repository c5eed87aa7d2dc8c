"""Evaluation: a pure function from a gate, evidence, approvals, waivers and a time to a result.

No I/O and no clock: ``now`` is an argument, so the same inputs always give the same result,
which is what makes a decision reproducible from the store and testable without servers.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timezone
from functools import lru_cache
from json.encoder import encode_basestring as _quote
from operator import itemgetter
from typing import Any

from pydantic_core import TzInfo

from gates import cel
from gates.checks import KINDS
from gates.evidence import Evidence, PathKey, cel_paths, follow, gate_digest
from gates.policy import ApprovalRule, Check, Gate, Person, PolicySet, Status
from gates.records import Approval, SentBack, Waiver
from gates.result import (
    GateResult,
    Outcome,
    WaiverNote,
)
from gates.waivers import valid_waivers


def _show(value: Any, limit: int = 80) -> str:
    """A short rendering of a found value; large collections are counted, not dumped."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and len(value) > 3:
        text = f"[{len(value)} items]"
    elif isinstance(value, dict) and len(value) > 4:
        text = "{" + ", ".join(sorted(map(str, value))[:4]) + ", …}"
    else:
        text = _json_cut(value, limit + 8)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_cut(value: Any, budget: int) -> str:
    """``json.dumps(value, ensure_ascii=False)`` as far as ``budget`` characters, and a little
    beyond.

    A path in a CEL check may reach a list of issues with their whole text: encoding all of
    it to show 80 characters was most of the cost of some evaluations. What comes after the
    budget is not JSON (brackets close early), and is cut off by :func:`_show`. Strings are
    quoted as ``dumps`` quotes them, by the function it calls (``dumps`` with an argument
    builds an encoder each time, and found texts quote every key).
    """
    if isinstance(value, str):
        return _quote(value if len(value) <= budget else value[:budget])
    if isinstance(value, bool) or value is None:
        return "true" if value else ("false" if value is False else "null")
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)  # what JSON writes
    if isinstance(value, dict):
        parts, size = [], 1
        for key, item in value.items():
            if size > budget:
                break
            part = f"{_quote(str(key))}: {_json_cut(item, budget - size)}"
            parts.append(part)
            size += len(part) + 2
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        parts, size = [], 1
        for item in value:
            if size > budget:
                break
            part = _json_cut(item, budget - size)
            parts.append(part)
            size += len(part) + 2
        return "[" + ", ".join(parts) + "]"
    return json.dumps(value, ensure_ascii=False, default=str)


@lru_cache(maxsize=4096)
def _sorted_paths(expr: str) -> tuple[PathKey, ...]:
    return tuple(sorted(cel_paths(expr)))


@lru_cache(maxsize=4096)
def _path_name(followed: PathKey) -> str:
    """``mlflow.run.metrics["f-1"]``: a path as CEL would write it."""
    return followed[0] + "".join(f".{k}" if k.isidentifier() else f'["{k}"]' for k in followed[1:])


def _cel_found(reached: list[tuple[PathKey, Any, str | None]]) -> str:
    """The values of the evidence an expression mentions (its paths, followed): the 'found'
    of a CEL check."""
    shown: dict[str, str] = {}
    for followed, value, _ in reached:
        name = _path_name(followed)
        if name not in shown:
            shown[name] = f"{name} = {_show(value)}"
    return "; ".join(shown.values()) or "false"


_Node = dict[str, Any]
"""A check's result as the fields of a :class:`CheckResult`, children as nodes too.

Results are validated once, as one tree, when the :class:`GateResult` is made: one call into
pydantic-core for the whole gate instead of one per check, rule and note. Each node names the
fields the model was always given at that place, so the models come out the same.
"""


class _Evaluator:
    def __init__(self, evidence: Evidence, waivers: dict[str, WaiverNote]) -> None:
        self.evidence = evidence
        self.data = evidence.data
        self.down = evidence.unavailable
        self.bound = evidence.memo.get("cel") or evidence.memo.setdefault(
            "cel", cel.bind(self.data)
        )
        self.waivers = waivers

    def check(self, node: Check) -> _Node:
        base = node.shown
        if self.down and not node.children and (down := self._unavailable(node)):
            return {
                **base,
                "outcome": "error",
                "expected": "its evidence to be readable",
                "found": down,
            }
        if node.if_ is not None:
            applies = cel.run_bool(node.if_, self.bound)
            if applies.error:
                return {
                    **base,
                    "outcome": "error",
                    "expected": f"`if: {node.if_}` to evaluate",
                    "found": f"error: {applies.error}",
                }
            if not applies.value:
                return {
                    **base,
                    "outcome": "skipped",
                    "expected": f"applies when {node.if_}",
                    "found": "does not apply",
                }
        result = self._body(node, base)
        if self.waivers and result["outcome"] in ("failed", "error"):
            waiver = self.waivers.get(node.id)
            if waiver:
                return {**result, "outcome": "waived", "waiver": waiver}
        return result

    def _unavailable(self, node: Check) -> str | None:
        """Why a check cannot be decided: a source it reads was down (not a failed check)."""
        down = self.down
        roots = sorted({path[0] for path in node.reads} & down.keys())
        return "; ".join(f"{root} could not be read: {down[root]}" for root in roots) or None

    def _body(self, node: Check, base: dict[str, Any]) -> _Node:
        if node.kind is not None:
            kind = KINDS[node.kind]
            try:
                finding = kind.run(node.params, self.evidence)
            except Exception as exc:  # a kind's bug meeting odd evidence: never a crash or a pass
                return {
                    **base,
                    "outcome": "error",
                    "expected": kind.summary,
                    "found": f"check kind {node.kind} failed: {type(exc).__name__}: "
                    + " ".join(str(exc).split()),
                }
            at = finding.location
            return {
                **base,
                "outcome": "passed" if finding.ok else "failed",
                "expected": finding.expected,
                "found": finding.found,
                "source": finding.source,
                "location": {"path": at.path, "line": at.line} if at else None,
            }
        if node.expr is not None:
            return self._expr(node, base)
        children = [self.check(child) for child in node.children]
        outcomes = [c["outcome"] for c in children]
        outcome = _combine(node, outcomes)
        if node.not_ is not None:
            expected, found = f"not: {children[0]['expected']}", children[0]["found"]
        else:
            word = "all" if node.all is not None else "any"
            expected = f"{word} of {len(children)} checks"
            tally = {o: outcomes.count(o) for o in ("passed", "failed", "error")}
            found = ", ".join(f"{n} {o}" for o, n in tally.items() if n) or "all skipped"
        return {
            **base,
            "outcome": outcome,
            "expected": expected,
            "found": found,
            "children": children,
        }

    def _expr(self, node: Check, base: dict[str, Any]) -> _Node:
        assert node.expr is not None
        expected = node.expected or f"{node.expr}"
        reached = [follow(self.data, path) for path in _sorted_paths(node.expr)]
        source = next((url for _, _, url in reached if url), None)
        outcome = cel.run_bool(node.expr, self.bound)
        if outcome.error:
            return {
                **base,
                "outcome": "error",
                "expected": expected,
                "found": f"error: {outcome.error}",
                "source": source,
            }
        if node.found is not None:
            shown = cel.run(node.found, self.bound)
            found = f"error: {shown.error}" if shown.error else _show(shown.value)
        else:
            found = _cel_found(reached)
        return {
            **base,
            "outcome": "passed" if outcome.value else "failed",
            "expected": expected,
            "found": found,
            "source": source,
        }


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


_FIRST = itemgetter(0)


def _utc(moment: datetime) -> datetime:
    """The same instant in UTC, to compare and subtract.

    pydantic gives each parsed datetime its own ``TzInfo``: comparing two of them asks both
    for their offset, a call into pydantic-core each, several times per approval and rule.
    Two datetimes in ``UTC`` compare as plain fields. A naive datetime (no offset) stays as
    it is, so mixing naive and aware fails as it always did; so does one that UTC cannot hold
    (year 1 or 9999 with an offset), which compares as it always did.
    """
    zone = moment.tzinfo
    if zone is None or (type(zone) not in _FIXED and zone.utcoffset(moment) is None):
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return moment


_FIXED = (timezone, TzInfo)
"""The tzinfo types that always give an offset (pydantic's and the standard library's)."""


def _stale(
    at: datetime, now: datetime, sent_back: SentBack | None, back_at: datetime | None
) -> str | None:
    """Why an approval given ``at`` counts toward no rule whatever the rule says, or None."""
    if at > now:
        return "approval is dated in the future"
    if sent_back is not None and back_at is not None and at < back_at:
        return (
            f"given before the project was sent back to {sent_back.to_phase} "
            f"on {sent_back.at:%Y-%m-%d %H:%M}Z"
        )
    return None


def _disqualified(
    rule: ApprovalRule,
    author: bool,
    stale: str | None,
    approval: Approval,
    at: datetime,
    now: datetime,
    digest: str,
) -> str | None:
    """Why an approval by someone holding one of the rule's roles does not count towards it,
    or None when it does.

    ``stale`` (:func:`_stale`, the same for every rule) is said where it always was: after
    the author clause, before the rule's expiry and evidence clauses.
    """
    if author and not rule.allow_author:
        return "is the author of the gated work and may not approve it"
    if stale is not None:
        return stale
    if rule.expires_after is not None and now - at > rule.expires_after:
        return f"approval expired (older than {rule.expires_after})"
    if rule.invalidate_on_change and approval.digest != digest:
        given = (approval.digest or "none")[:12]
        return f"approval was given on evidence {given}; it changed since (now {digest[:12]})"
    return None


def _assign(eligible: dict[str, list[int]], required: list[int]) -> dict[str, int]:
    """Which rule each approver counts toward: one rule per person, as many of the rules'
    required approvals met as possible.

    When each approver fits one rule only there is nothing to match: they count toward it
    (or, were it full, still show under it), which is what :func:`_match` would say at several
    times the cost: the usual case, each role held by other people.
    """
    if all(len(rules) == 1 for rules in eligible.values()):
        return {person: rules[0] for person, rules in eligible.items()}
    return _match(eligible, required)


def _match(eligible: dict[str, list[int]], required: list[int]) -> dict[str, int]:
    """:func:`_assign` as a bipartite matching of people to the rules' seats (augmenting
    paths): "first come, first rule" would let alice, who holds both roles, take the rule bob
    could also fill and leave the one only she could fill empty. Approvers no seat is left for
    still show under the first rule they may approve (they change nothing: every rule they
    fit is full).
    """
    holder: dict[tuple[int, int], str] = {}

    def place(person: str, seen: set[tuple[int, int]]) -> bool:
        for rule in eligible[person]:
            for seat in range(required[rule]):
                slot = (rule, seat)
                if slot in seen:
                    continue
                seen.add(slot)
                if slot not in holder or place(holder[slot], seen):
                    holder[slot] = person
                    return True
        return False

    for person in eligible:
        place(person, set())
    assigned = {person: rule for (rule, _), person in holder.items()}
    return {p: assigned.get(p, rules[0]) for p, rules in eligible.items() if rules}


def _approvals(
    gate: Gate,
    project: str,
    evidence: Evidence,
    approvals: list[Approval],
    digest: str,
    now: datetime,
    policies: PolicySet,
    sent_back: SentBack | None,
) -> tuple[list[_Node], list[_Node], list[_Node]]:
    """The rules' results, the rejections and the approvals that do not count, as the fields
    of :class:`RuleResult`, :class:`Rejection` and :class:`Ignored`."""
    if not approvals and not gate.approvals:  # a gate that asks no one, and no one answered
        return [], [], []
    authors = {p.id for name in evidence.authors if (p := policies.person(name))}
    moment = _utc(now)
    back_at = _utc(sent_back.at) if sent_back is not None else None
    latest: dict[str, tuple[Person, Approval, datetime]] = {}
    ignored: list[_Node] = []
    for at, approval in sorted([(_utc(a.at), a) for a in approvals], key=_FIRST):
        person = policies.person(approval.person)
        if person is None:
            ignored.append(
                {"person": approval.person, "reason": f"unknown person '{approval.person}'"}
            )
        else:
            latest[person.id] = (person, approval, at)
    rules = gate.approvals
    eligible: dict[str, list[int]] = {}
    rejections: dict[str, _Node] = {}
    reasons: dict[str, str] = {}
    for person, approval, at in latest.values():
        roles = policies.roles_of(project, person.id)
        author = person.id in authors
        stale = _stale(at, moment, sent_back, back_at)
        fits, why = [], None
        for index, rule in enumerate(rules):
            if not roles.isdisjoint(rule.roles):
                if against := _disqualified(rule, author, stale, approval, at, moment, digest):
                    why = against
                else:
                    fits.append(index)
        if fits and approval.decision == "approve":
            eligible[person.id] = fits
        elif fits:
            rejections[person.id] = {
                "person": person.id,
                "reason": approval.reason or "no reason given",
                "at": approval.at,
            }
        elif rules:
            # Why it counts for nothing: the last rule whose role the person holds says more
            # than "lacks role" (which, when they hold none, the first rule says).
            reasons[person.id] = why or rules[0].lacking
    assigned = _assign(eligible, [rule.count for rule in rules])
    results = []
    for index, rule in enumerate(rules):
        approvers = [p for p, counted in assigned.items() if counted == index]
        candidates = [
            p
            for role in rule.roles
            for p in policies.holder_ids(project, role)
            if p not in assigned and (rule.allow_author or p not in authors)
        ]
        results.append(
            {
                "rule": rule.name,
                "roles": rule.roles,
                "required": rule.count,
                "approvers": approvers,
                "candidates": list(dict.fromkeys(candidates)),
            }
        )
        if len(approvers) < rule.count:
            ignored += [
                {
                    "person": p,
                    "reason": f"counted for {rules[assigned[p]].name}, not also for "
                    f"{rule.name}: one person's approval counts toward one rule only",
                }
                for p, fits in eligible.items()
                if index in fits and assigned[p] != index
            ]
    ignored += [{"person": p, "reason": why} for p, why in reasons.items()]
    return results, list(rejections.values()), ignored


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
    granted, ignored_waivers = valid_waivers(gate, project, waivers, now, policies)
    evaluator = _Evaluator(evidence, granted)
    checks = [evaluator.check(c) for c in gate.checks]
    rules, rejections, ignored = _approvals(
        gate, project, evidence, approvals, digest, now, policies, sent_back
    )
    outcomes = [c["outcome"] for c in checks]
    status: Status
    if "error" in outcomes:
        status = "error"
    elif "failed" in outcomes or rejections:
        status = "blocked"
    elif any(len(r["approvers"]) < r["required"] for r in rules):
        status = "awaiting_approval"
    else:
        status = "passed"
    return GateResult.model_validate(
        {
            "project": project,
            "gate": gate.id,
            "title": gate.title or gate.id,
            "mode": gate.mode,
            "status": status,
            "checks": checks,
            "approvals": rules,
            "rejections": rejections,
            "ignored": ignored + ignored_waivers,
            "evidence_digest": evidence.digest,
            "gate_digest": digest,
            "evaluated_at": now,
        }
    )
