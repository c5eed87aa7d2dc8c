"""Evidence sources: where the facts of a snapshot come from.

A source returns a fragment of the evidence (``{"files": …}``, ``{"github": …}``); fragments
are merged into one snapshot. Sources are independent, so they are collected in parallel and
each retried on its own.

When the system behind a source is down (after its retries), the source returns
``{"unavailable": {"mlflow": "why"}}`` rather than raising: the checks that read that part
of the evidence then come out ``error`` — "could not tell" — while the rest of the gate is
still decided. A :class:`SourceError` is for a project the source cannot read at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gates.events import Event
from gates.policy import Project

log = logging.getLogger("phasegate.sources")


class EvidenceSource(Protocol):
    """``pull_request``: the PR being gated (its head is what files are read at), or None
    for the project as it stands on its default branch."""

    name: str

    def collect(self, project: Project, pull_request: int | None) -> dict[str, Any]: ...


@runtime_checkable
class ReadsEvents(Protocol):
    """A source that takes facts from the deliveries that asked for the evaluation instead of
    asking its system again (GitHub's ``pull_request`` payload holds the PR's head, branch,
    labels and author). ``events`` may be empty: it then reads everything itself."""

    def collect_after(
        self, project: Project, pull_request: int | None, events: Sequence[Event]
    ) -> dict[str, Any]: ...


class SourceError(RuntimeError):
    """A source could not be read; the message says which and why (never a secret)."""


class LocalCheckout:
    """Evidence from a folder per project: its repository checked out, plus facts kept in
    ``.phasegate/evidence.json`` (issues, registry, monitoring) for systems not wired yet.

    It is the embedded default's source: with nothing but a checkout the whole path from
    event to decision works, and a demo needs no outside service.
    """

    name = "local"
    skip = {".git", ".phasegate", "__pycache__", ".venv", "node_modules"}

    def __init__(self, root: Path, max_file_bytes: int = 256 * 1024) -> None:
        self.root = Path(root)
        self.max_file_bytes = max_file_bytes

    def collect(self, project: Project, pull_request: int | None = None) -> dict[str, Any]:
        base = self.root / project.key
        if not base.is_dir():
            log.info("no checkout for %s at %s: no files in its evidence", project.key, base)
            return {}
        files = {}
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(base)
            if path.is_file() and not self.skip.intersection(relative.parts):
                files[relative.as_posix()] = {
                    "path": relative.as_posix(),
                    "content": self._text(path),
                }
        facts_file = base / ".phasegate" / "evidence.json"
        try:
            facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
        except (OSError, json.JSONDecodeError) as exc:
            raise SourceError(f"{facts_file}: {exc}") from None
        if not isinstance(facts, dict):
            raise SourceError(f"{facts_file}: expected a JSON object of evidence sections")
        return {**facts, "files": {**facts.get("files", {}), **files}}

    def _text(self, path: Path) -> str | None:
        if path.stat().st_size > self.max_file_bytes:
            return None
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            return None
