"""The policy set in force in a running engine, kept when an edit breaks the files.

A team lead who pushes a broken policy must get the errors, not a stopped engine and not an
engine without gates: the last valid set stays in force. It is also written to a cache file,
so an engine restarted while the files are broken still enforces the last good set.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from gates.loader import PolicyError, load_policies, policy_hash
from gates.policy import PolicySet

log = logging.getLogger(__name__)


class NoValidPolicies(RuntimeError):
    """There has never been a valid policy set here: nothing can be decided."""


class ActivePolicies:
    def __init__(self, directory: Path, cache: Path | None = None) -> None:
        self.directory = Path(directory)
        self.cache = cache
        self._current: PolicySet | None = None
        self._loaded: str | None = None  # digest of the files last loaded
        self.errors: list[PolicyError] = []

    @property
    def current(self) -> PolicySet:
        if self._current is None:
            problems = "\n".join(map(str, self.errors))
            raise NoValidPolicies(f"no valid policy set in {self.directory}:\n{problems}")
        return self._current

    def reload(self) -> list[PolicyError]:
        """Load the directory again; adopt it only if it is valid. Returns its errors.

        Files that have not changed since the last load are not parsed again: every flow run
        reloads, and parsing a hundred projects' YAML costs seconds, hashing them milliseconds.
        """
        loaded = policy_hash(self.directory) if self.directory.is_dir() else None
        if loaded is not None and loaded == self._loaded:
            return self.errors
        result = load_policies(self.directory)
        self._loaded = loaded
        self.errors = result.errors
        if result.policies is not None:
            changed = (
                self._current is None or self._current.policy_hash != result.policies.policy_hash
            )
            self._current = result.policies
            if changed:
                log.info("policy set %s in force", result.policies.policy_hash[:12])
                self._write_cache()
            return []
        if self._current is None:
            self._current = self._read_cache()
        kept = self._current.policy_hash[:12] if self._current else "none"
        log.error(
            "policies in %s are invalid (%d problem(s)); keeping policy set %s in force:\n%s",
            self.directory,
            len(result.errors),
            kept,
            "\n".join(map(str, result.errors)),
        )
        return result.errors

    def _write_cache(self) -> None:
        if self.cache is None or self._current is None:
            return
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache.with_suffix(".tmp")
        tmp.write_text(self._current.model_dump_json(by_alias=True))
        tmp.replace(self.cache)

    def _read_cache(self) -> PolicySet | None:
        if self.cache is None or not self.cache.exists():
            return None
        try:
            return PolicySet.model_validate_json(self.cache.read_text())
        except (OSError, ValidationError) as exc:
            log.error("cannot use the cached policy set %s: %s", self.cache, exc)
            return None
