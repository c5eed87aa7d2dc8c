"""``issue_sections``: the DSLP issue with a label has its sections really written.

A section counts as filled only when it is not empty and not the repository's own template
placeholder: a copied template is the most common way a gate gets fooled.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from gates.checks.base import Finding, Params, listing, register
from gates.checks.text import emptiness, lookup, normalise
from gates.evidence import Evidence, Issue, PathKey


class IssueSections(Params):
    label: str
    sections: list[str] = []
    checkboxes: Literal["all", "none"] | list[str] = "none"

    @cached_property
    def expected(self) -> str:
        wanted = [f"'{s}'" for s in self.sections]
        text = f"an issue labelled {self.label}"
        if wanted:
            text += f" with {listing(wanted)} filled in"
        if self.checkboxes != "none":
            boxes = "all" if self.checkboxes == "all" else listing(self.checkboxes)
            text += f"; {boxes} boxes ticked"
        return text


def _problems(issue: Issue, params: IssueSections) -> list[str]:
    problems = []
    for name in params.sections:
        why = emptiness(lookup(issue.sections, name), lookup(issue.template, name))
        if why:
            problems.append(f"'{name}' is {why}")
    if params.checkboxes == "all":
        unticked = [c.text for c in issue.checkboxes if not c.checked]
    elif params.checkboxes == "none":
        unticked = []
    else:
        ticked = {normalise(c.text) for c in issue.checkboxes if c.checked}
        unticked = [text for text in params.checkboxes if normalise(text) not in ticked]
    problems += [f"box '{text}' is not ticked" for text in unticked]
    return problems


def _reads(params: IssueSections) -> list[PathKey]:
    return [("github", "issues")]


@register(
    "issue_sections",
    "issue with a label has sections filled and boxes ticked",
    IssueSections,
    _reads,
)
def run(params: IssueSections, evidence: Evidence) -> Finding:
    expected = params.expected
    issues = evidence.issues_labelled(params.label)
    if not issues:
        return Finding(False, expected, f"no issue labelled {params.label}")
    failures = [(issue, _problems(issue, params)) for issue in issues]
    failures = [(issue, problems) for issue, problems in failures if problems]
    if not failures:
        return Finding(
            True,
            expected,
            listing([f"#{i.number}" for i in issues]) + " complete",
            source=issues[0].url,
        )
    issue, problems = failures[0]
    found = f"#{issue.number}: " + "; ".join(problems)
    if len(failures) > 1:
        found += f" (and {len(failures) - 1} more issue(s) incomplete)"
    return Finding(False, expected, found, source=issue.url)
