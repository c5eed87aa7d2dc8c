"""One :class:`GateResult`, shown as plain text (CLI), Markdown (GitHub check summary) or
HTML (the status page).

Each blocked check says what was expected, what was found, where, and how to fix it;
approvals say who already approved, who is still asked, and which approvals stopped
counting and why.
"""

from __future__ import annotations

from html import escape

from gates.result import CheckResult, GateResult

GITHUB_SUMMARY_LIMIT = 65535
"""GitHub's limit for a check run's summary. Its API description says 65,535 *characters*,
but GitHub counts UTF-8 bytes ("summary exceeds a maximum bytesize of 65535"): ✓ and ✗ are
three bytes each, so a summary is cut by bytes (:func:`cut`)."""

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


def to_markdown(
    result: GateResult, limit: int = GITHUB_SUMMARY_LIMIT, full_at: str | None = None
) -> str:
    """Markdown for a GitHub check-run summary, cut to ``limit`` bytes if it must be (the
    last line then says so, and that the whole result is at ``full_at``)."""
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
    where = full_at or f"phasegate's status page, /status/{result.project}"
    return cut("\n".join(out), limit, where)


def cut(text: str, limit: int, where: str) -> str:
    """``text`` within ``limit`` UTF-8 bytes, cut after a whole line, ending with a line that
    says how much was left out and where all of it can be seen (``where``)."""
    size = len(text.encode())
    if size <= limit:
        return text

    def note(lines: int, left: int) -> str:
        return (
            f"\n\n… {lines:,} more line(s) ({left:,} bytes) left out: this summary may hold "
            f"at most {limit:,} bytes. All of it: {where}"
        )

    lines = text.split("\n")
    budget = limit - len(note(len(lines), size).encode())
    kept, used = 0, 0
    for line in lines:
        used += len(line.encode()) + 1
        if used > budget:
            break
        kept += 1
    shown = "\n".join(lines[:kept])
    if not kept:  # one line longer than the budget: cut inside it, on a character boundary
        shown = text.encode()[: max(budget, 0)].decode("utf-8", "ignore")
        kept = 1
    return shown + note(len(lines) - kept, size - len(shown.encode()))


def _esc(text: str) -> str:
    """Text between tags: ``<``, ``>`` and ``&`` escaped (quotes only matter in attributes)."""
    return escape(text, quote=False)


def _html_link(url: str | None, text: str) -> str:
    """``text`` linked to ``url`` -- only a web address: evidence is outside input, and a
    ``javascript:`` link on the status page would run in its readers' browsers."""
    if url and url.lower().startswith(("https://", "http://")):
        return f'<a href="{escape(url)}">{_esc(text)}</a>'
    return _esc(text)


def _html_rows(check: CheckResult, depth: int, out: list[str]) -> None:
    where = f"{check.location.path}:{check.location.line}" if check.location else ""
    fix = (check.hint or "") if check.outcome in ("failed", "error") else ""
    if check.waiver:
        w = check.waiver
        fix = f"waived by {w.person} until {w.expires_at:%Y-%m-%d}: {w.reason}"
    out.append(
        f'<tr class="{check.outcome}"><td>{_MARK[check.outcome]}</td>'
        f'<td style="padding-left:{0.3 + 1.5 * depth:.1f}em">{_esc(check.title)}</td>'
        f"<td>{check.outcome}</td><td>{_esc(check.expected)}</td>"
        f"<td>{_html_link(check.source, check.found)}</td><td>{_esc(where)}</td>"
        f"<td>{_esc(fix)}</td></tr>"
    )
    for child in check.children:
        _html_rows(child, depth + 1, out)


def to_html(result: GateResult) -> str:
    """One gate's result as an HTML ``<section>`` (its id is the gate's, for links from the
    check run); every value from policies or evidence is escaped."""
    out = [
        f'<section id="{escape(result.gate)}" class="gate {result.status}">',
        f"<h2>{_EMOJI[result.status]} {_esc(result.title)} <small>({_esc(result.gate)})"
        f"</small>: {_STATUS[result.status].lower()}</h2>",
        f'<p class="summary">{_esc(result.summary)}</p>',
    ]
    if result.mode in _MODE_NOTE:
        out.append(f'<p class="mode">{_esc(_MODE_NOTE[result.mode].replace("**", ""))}</p>')
    out += [
        "<table><thead><tr><th></th><th>Check</th><th>Outcome</th><th>Expected</th>"
        "<th>Found</th><th>Where</th><th>How to fix</th></tr></thead><tbody>"
    ]
    for check in result.checks:
        _html_rows(check, 0, out)
    out.append("</tbody></table>")
    approvals = _approval_lines(result)
    if approvals:
        out += ["<h3>Approvals</h3><ul>", *(f"<li>{_esc(a)}</li>" for a in approvals), "</ul>"]
    out += [
        f'<p class="meta">evidence <code>{result.evidence_digest[:12]}</code> · gate digest '
        f"<code>{result.gate_digest[:12]}</code> · evaluated "
        f"{result.evaluated_at:%Y-%m-%d %H:%M} UTC</p>",
        "</section>",
    ]
    return "\n".join(out)
