"""One :class:`GateResult`, shown as plain text (CLI) or Markdown (GitHub check summary).

Each blocked check says what was expected, what was found, where, and how to fix it;
approvals say who already approved, who is still asked, and which approvals stopped
counting and why.
"""

from __future__ import annotations

from gates.result import CheckResult, GateResult

GITHUB_SUMMARY_LIMIT = 65535

_MARK = {"passed": "✓", "failed": "✗", "skipped": "-", "waived": "~", "error": "!"}
_STATUS = {
    "passed": "PASSED",
    "blocked": "BLOCKED",
    "awaiting_approval": "AWAITING APPROVAL",
    "error": "ERROR",
}
_EMOJI = {
    "passed": "✅",
    "blocked": "❌",
    "awaiting_approval": "⏳",
    "error": "⚠️",
}
_MODE_NOTE = {
    "warn": "mode **warn**: reported only, this gate does not block",
    "shadow": "mode **shadow**: recorded only, this gate does not block",
}


def _approval_lines(result: GateResult) -> list[str]:
    lines = []
    for rule in result.approvals:
        got = ", ".join(rule.approvers) or "nobody yet"
        line = f"{'/'.join(rule.roles)}: {len(rule.approvers)} of {rule.required} ({got})"
        if rule.missing:
            asked = ", ".join(rule.candidates) or "nobody holds this role in the project"
            line += f"; still needed: {rule.missing}, from {asked}"
        lines.append(line)
    lines += [f"rejected by {r.person}: {r.reason}" for r in result.rejections]
    lines += [f"not counted: {i.person}: {i.reason}" for i in result.ignored]
    return lines


def _text_check(check: CheckResult, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    out.append(f"{pad}{_MARK[check.outcome]} {check.id}: {check.title} [{check.outcome}]")
    if check.outcome in ("failed", "error") or (depth and check.outcome == "waived"):
        out.append(f"{pad}    expected: {check.expected}")
        out.append(f"{pad}    found:    {check.found}")
        if check.location:
            out.append(f"{pad}    at:       {check.location.path}:{check.location.line}")
        if check.source:
            out.append(f"{pad}    see:      {check.source}")
        if check.hint and check.outcome != "waived":
            out.append(f"{pad}    fix:      {check.hint}")
    if check.waiver:
        w = check.waiver
        out.append(f"{pad}    waived by {w.person} until {w.expires_at:%Y-%m-%d}: {w.reason}")
    for child in check.children:
        _text_check(child, depth + 1, out)


def to_text(result: GateResult) -> str:
    out = [
        f"{result.project} · gate {result.gate} ({result.title}): {_STATUS[result.status]}",
        f"  {result.summary}",
    ]
    if result.mode in _MODE_NOTE:
        out.append("  " + _MODE_NOTE[result.mode].replace("**", ""))
    out.append("")
    for check in result.checks:
        _text_check(check, 0, out)
    approvals = _approval_lines(result)
    if approvals:
        out += ["", "approvals:"] + [f"  {line}" for line in approvals]
    out += ["", f"evidence {result.evidence_digest[:12]} · gate digest {result.gate_digest[:12]}"]
    return "\n".join(out)


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _md_rows(check: CheckResult, depth: int, out: list[str]) -> None:
    title = ("&nbsp;&nbsp;" * 2 * depth) + _cell(check.title)
    found = _cell(check.found)
    if check.source:
        found = f"[{found}]({check.source})"
    if check.location:
        found += f" (`{check.location.path}:{check.location.line}`)"
    fix = _cell(check.hint) if check.outcome in ("failed", "error") else ""
    if check.waiver:
        w = check.waiver
        fix = f"waived by {w.person} until {w.expires_at:%Y-%m-%d}: {_cell(w.reason)}"
    out.append(f"| {_MARK[check.outcome]} | {title} | {_cell(check.expected)} | {found} | {fix} |")
    for child in check.children:
        _md_rows(child, depth + 1, out)


def to_markdown(result: GateResult, limit: int = GITHUB_SUMMARY_LIMIT) -> str:
    """Markdown for a GitHub check-run summary, cut to GitHub's limit if it must be."""
    out = [
        f"### {_EMOJI[result.status]} {result.title}: {_STATUS[result.status].lower()}",
        "",
        result.summary,
    ]
    if result.mode in _MODE_NOTE:
        out += ["", f"> {_MODE_NOTE[result.mode]}"]
    out += ["", "| | Check | Expected | Found | How to fix |", "|---|---|---|---|---|"]
    for check in result.checks:
        _md_rows(check, 0, out)
    approvals = _approval_lines(result)
    if approvals:
        out += ["", "**Approvals**", ""] + [f"- {_cell(line)}" for line in approvals]
    out += [
        "",
        f"<sub>evidence `{result.evidence_digest[:12]}` · gate digest "
        f"`{result.gate_digest[:12]}` · evaluated {result.evaluated_at:%Y-%m-%d %H:%M} UTC</sub>",
    ]
    text = "\n".join(out)
    if len(text) > limit:
        note = "\n\n… (cut to GitHub's summary limit; run `phasegate check` for the rest)"
        text = text[: limit - len(note)] + note
    return text
