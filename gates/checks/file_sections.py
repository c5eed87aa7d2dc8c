"""``file_sections``: a Markdown document in the repo has its sections written.

Model cards, solution architecture docs and known-issues pages are templates first; the
failure points at the heading's line so a check-run annotation lands where to write.
"""

from __future__ import annotations

from functools import cached_property

from pydantic import Field

from gates.checks.base import Finding, Location, Params, listing, register
from gates.checks.text import emptiness, lookup, sections
from gates.evidence import Evidence, PathKey


class FileSections(Params):
    path: str
    sections: list[str] = Field(min_length=1)
    placeholders: dict[str, str] = Field(
        default_factory=dict, description="heading -> template text that does not count as filled"
    )

    @cached_property
    def expected(self) -> str:
        return f"{self.path} with {listing([repr(s) for s in self.sections])} filled in"


def _reads(params: FileSections) -> list[PathKey]:
    return [("files", params.path)]


@register("file_sections", "Markdown file has sections filled", FileSections, _reads)
def run(params: FileSections, evidence: Evidence) -> Finding:
    expected = params.expected
    file = evidence.files.get(params.path)
    if file is None or not file.exists:
        return Finding(False, expected, f"{params.path} does not exist")
    if file.content is None:
        return Finding(False, expected, f"{params.path}: content not collected", source=file.url)
    found = sections(file.content)
    gaps, first_line = [], None
    for name in params.sections:
        section = lookup(found, name)
        why = emptiness(section.body if section else None, lookup(params.placeholders, name))
        if why:
            gaps.append(f"'{name}' is {why}")
            if first_line is None and section is not None:
                first_line = section.line
    if gaps:
        return Finding(
            False,
            expected,
            "; ".join(gaps),
            source=file.url,
            location=Location(params.path, first_line or 1),
        )
    return Finding(
        True,
        expected,
        f"{params.path}: all {len(params.sections)} sections written",
        source=file.url,
    )
