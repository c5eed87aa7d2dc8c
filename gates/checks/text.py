"""Reading the documents DSLP checks look at: Markdown sections, globs, JSON/YAML files.

Shared by several kinds so that "filled", "matches" and "parses" mean the same everywhere.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gates.evidence import Evidence, File
from gates.yaml_problem import describe

# What people leave in a section they have not written: GitHub issue forms put
# "_No response_" in an empty optional field.
_EMPTY_MARKERS = {"", "_no response_", "tbd", "todo", "n/a", "-", "...", "none yet"}
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.S)


@dataclass(frozen=True)
class Section:
    heading: str
    body: str
    line: int


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    return " ".join(_COMMENT.sub("", text).split()).strip().lower()


@lru_cache(maxsize=4096)
def heading_key(heading: str) -> str:
    return normalise(heading).rstrip(":").strip()


@lru_cache(maxsize=256)
def sections(markdown: str) -> dict[str, Section]:
    """Headings of a Markdown text (any level) with the text under each, keyed by heading."""
    found: dict[str, Section] = {}
    heading, line, body = None, 0, []
    for number, text in enumerate(markdown.splitlines(), start=1):
        match = _HEADING.match(text)
        if match:
            if heading is not None:
                found[heading_key(heading)] = Section(heading, "\n".join(body).strip(), line)
            heading, line, body = match.group(2), number, []
        elif heading is not None:
            body.append(text)
    if heading is not None:
        found[heading_key(heading)] = Section(heading, "\n".join(body).strip(), line)
    return found


def lookup(by_heading: dict[str, Any], wanted: str) -> Any:
    """Find a section by heading regardless of case, spacing and a trailing colon."""
    if wanted in by_heading:
        return by_heading[wanted]
    if not by_heading:  # most placeholders: no headings to normalise
        return None
    heading = _heading_index(tuple(by_heading)).get(heading_key(wanted))
    return None if heading is None else by_heading[heading]


@lru_cache(maxsize=1024)
def _heading_index(headings: tuple[str, ...]) -> dict[str, str]:
    """Normalised heading -> the heading as written (the first, if two normalise alike):
    built once per set of headings rather than normalising them all at every look-up."""
    index: dict[str, str] = {}
    for heading in headings:
        index.setdefault(heading_key(heading), heading)
    return index


def emptiness(body: str | None, placeholder: str | None = None) -> str | None:
    """Why a section does not count as filled, or None when it does."""
    if body is None:
        return "missing"
    text = normalise(body)
    if text in _EMPTY_MARKERS:
        return "empty"
    if placeholder is not None and text == normalise(placeholder):
        return "still the template text"
    return None


def _glob(pattern: str) -> str:
    """A glob as a regular expression: ``*`` and ``?`` within a folder, ``**`` across."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(_glob(pattern) + r"\Z")


@lru_cache(maxsize=512)
def folder_regex(pattern: str) -> re.Pattern[str]:
    """A path whose leading folders match a glob without ``**`` (group 1: those folders).

    Without ``**`` a glob spans as many levels as it has, so one match per path finds the
    folder, where splitting every path and matching each prefix costs several.
    """
    assert "**" not in pattern
    return re.compile("(" + _glob(pattern) + ")/")


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def matching_files(evidence: Evidence, pattern: str) -> list[File]:
    """Existing files whose path matches a glob (``*`` within a folder, ``**`` across)."""
    pattern = pattern.removeprefix("./")
    if not is_glob(pattern):  # a plain path: one look-up, not a regex over every file
        file = evidence.files.get(pattern)
        return [file] if file is not None and file.exists else []
    match = glob_regex(pattern).match
    found = [f for path, f in evidence.files.items() if f.exists and match(path)]
    found.sort(key=_PATH)
    return found


_PATH = attrgetter("path")


@dataclass(frozen=True)
class Parsed:
    value: Any = None
    error: str | None = None
    line: int = 1


def parse_document(file: File) -> Parsed:
    """Parse a JSON or YAML file (by extension; YAML otherwise, since JSON is YAML).

    Cached by content: the same file is read by several checks and every re-evaluation.
    """
    if file.content is None:
        return Parsed(error="content not collected")
    return _parse(file.content, file.path.endswith(".json"))


@lru_cache(maxsize=256)
def _parse(content: str, is_json: bool) -> Parsed:
    if is_json:
        try:
            return Parsed(json.loads(content))
        except json.JSONDecodeError as exc:
            return Parsed(error=f"invalid JSON: {exc.msg}", line=exc.lineno)
    try:
        return Parsed(YAML(typ="safe", pure=True).load(io.StringIO(content)))
    except YAMLError as exc:  # also a ReaderError: a control character in the file
        problem = describe(exc, content)
        return Parsed(error=f"invalid YAML: {problem.message}", line=problem.line)
