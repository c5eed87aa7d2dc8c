"""``dataset_files``: every dataset folder documents itself (datasheet, schema, ...).

Datasets are the folders matching ``folders`` (e.g. ``data/*``) that hold any file; each
must contain a match for every entry of ``require``.
"""

from __future__ import annotations

from functools import cached_property

from pydantic import Field

from gates.checks.base import Finding, Params, listing, register
from gates.checks.text import folder_regex, glob_regex, matching_files
from gates.evidence import Evidence, PathKey


class DatasetFiles(Params):
    folders: str = Field(description="Glob of dataset folders, e.g. data/*")
    require: list[str] = Field(min_length=1, description="Globs relative to each folder.")

    @cached_property
    def expected(self) -> str:
        return f"each dataset folder {self.folders} has {listing(self.require)}"


def _reads(params: DatasetFiles) -> list[PathKey]:
    return [("files",)]


def _folders(evidence: Evidence, pattern: str) -> list[str]:
    pattern = pattern.rstrip("/")
    paths = [path for path, file in evidence.files.items() if file.exists]
    if "**" not in pattern:
        leading = folder_regex(pattern).match
        return sorted({found.group(1) for path in paths if (found := leading(path))})
    match = glob_regex(pattern).match
    seen: dict[str, bool] = {}  # files share folders: each is matched once
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in seen:
                seen[folder] = match(folder) is not None
    return sorted(folder for folder, matched in seen.items() if matched)


@register("dataset_files", "each dataset folder has the required files", DatasetFiles, _reads)
def run(params: DatasetFiles, evidence: Evidence) -> Finding:
    expected = params.expected
    folders = _folders(evidence, params.folders)
    if not folders:
        return Finding(False, expected, f"no dataset folder matches {params.folders}")
    gaps = [
        f"{folder} lacks {listing(missing)}"
        for folder in folders
        if (missing := [r for r in params.require if not matching_files(evidence, f"{folder}/{r}")])
    ]
    if gaps:
        return Finding(False, expected, "; ".join(gaps))
    return Finding(True, expected, f"{len(folders)} dataset(s) documented: {listing(folders)}")
