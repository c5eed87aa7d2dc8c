"""``ci_green``: tests and CI on the gated commit passed.

phasegate's own checks are ignored by default: a gate must not wait on itself.
"""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property

from pydantic import Field

from gates.checks.base import Finding, Params, listing, register
from gates.evidence import Evidence, PathKey

GOOD = {"success", "neutral", "skipped"}


class CiGreen(Params):
    required: list[str] = Field(
        default_factory=list, description="Check names that must be present."
    )
    ignore: list[str] = Field(
        default_factory=lambda: ["phasegate*"], description="Globs of names to ignore."
    )

    @cached_property
    def ignored(self) -> tuple[re.Pattern[str], ...]:
        """``ignore`` compiled once, as ``fnmatchcase`` compiles each glob (and looks it up
        again for every check name)."""
        return tuple(re.compile(fnmatch.translate(glob)) for glob in self.ignore)

    @cached_property
    def expected(self) -> str:
        if not self.required:
            return "all CI checks green"
        return f"all CI checks green, including {listing(self.required)}"


def _reads(params: CiGreen) -> list[PathKey]:
    return [("github", "checks")]


@register("ci_green", "CI checks on the gated commit are green", CiGreen, _reads)
def run(params: CiGreen, evidence: Evidence) -> Finding:
    expected = params.expected
    ignored = params.ignored
    checks = [c for c in evidence.github.checks if not any(glob.match(c.name) for glob in ignored)]
    names = {c.name for c in checks}
    absent = [n for n in params.required if n not in names]
    if not checks:
        return Finding(False, expected, "no CI checks on the commit")
    red = [c for c in checks if c.status == "completed" and c.conclusion not in GOOD]
    running = [c for c in checks if c.status != "completed"]
    if red:
        return Finding(
            False,
            expected,
            f"{listing([f'{c.name} ({c.conclusion})' for c in red])} failed",
            source=red[0].url,
        )
    if absent:
        return Finding(False, expected, f"{listing(absent)} did not run")
    if running:
        return Finding(
            False,
            expected,
            f"{listing([c.name for c in running])} still running",
            source=running[0].url,
        )
    return Finding(True, expected, f"{len(checks)} check(s) green")
