"""``file_exists``: files (paths or globs) exist at the gated ref and, if asked, parse."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field

from gates.checks.base import Finding, Location, Params, listing, register
from gates.checks.text import is_glob, matching_files, parse_document
from gates.evidence import Evidence, PathKey


class FileExists(Params):
    paths: list[str] = Field(min_length=1, description="Paths or globs; each must match a file.")
    parses: Literal["json", "yaml"] | None = Field(
        default=None, description="Also require every matched file to parse."
    )

    @cached_property
    def expected(self) -> str:
        if not self.parses:
            return f"{listing(self.paths)} present"
        return f"{listing(self.paths)} present and valid {self.parses.upper()}"


def _reads(params: FileExists) -> list[PathKey]:
    if any(is_glob(p) for p in params.paths):
        return [("files",)]
    return [("files", p) for p in params.paths]


@register("file_exists", "files exist (and parse)", FileExists, _reads)
def run(params: FileExists, evidence: Evidence) -> Finding:
    expected = params.expected
    found = [(p, matching_files(evidence, p)) for p in params.paths]
    missing = [p for p, files in found if not files]
    if missing:
        return Finding(False, expected, f"missing: {listing(missing)}")
    matched = [f for _, files in found for f in files]
    if params.parses:
        for file in matched:
            parsed = parse_document(file)
            if parsed.error:
                return Finding(
                    False,
                    expected,
                    f"{file.path} line {parsed.line}: {parsed.error}",
                    source=file.url,
                    location=Location(file.path, parsed.line),
                )
    return Finding(True, expected, listing([f.path for f in matched]), source=matched[0].url)
