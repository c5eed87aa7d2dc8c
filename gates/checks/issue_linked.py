"""``issue_linked``: the issue with one label links an issue with another (Ask → Data)."""

from __future__ import annotations

from gates.checks.base import Finding, Params, register
from gates.evidence import Evidence, PathKey


class IssueLinked(Params):
    label: str
    to_label: str


def _reads(params: IssueLinked) -> list[PathKey]:
    return [("github", "issues")]


@register(
    "issue_linked", "issue with a label links an issue with another label", IssueLinked, _reads
)
def run(params: IssueLinked, evidence: Evidence) -> Finding:
    expected = f"the {params.label} issue links a {params.to_label} issue"
    sources = evidence.issues_labelled(params.label)
    if not sources:
        return Finding(False, expected, f"no issue labelled {params.label}")
    targets = {i.number for i in evidence.issues_labelled(params.to_label)}
    for issue in sources:
        linked = sorted(targets.intersection(issue.links))
        if linked:
            return Finding(True, expected, f"#{issue.number} links #{linked[0]}", source=issue.url)
    issue = sources[0]
    mentioned = ", ".join(f"#{n}" for n in issue.links)
    found = f"#{issue.number} links {mentioned}, none labelled {params.to_label}"
    return Finding(
        False,
        expected,
        found if issue.links else f"#{issue.number} links no issue",
        source=issue.url,
    )
