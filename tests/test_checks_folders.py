"""Dataset folders found by one match per path are those found by matching every prefix."""

from __future__ import annotations

import random

from gates.checks.dataset_files import _folders
from gates.checks.text import glob_regex
from gates.evidence import Evidence


def _every_prefix(evidence: Evidence, pattern: str) -> list[str]:
    """The folders of ``pattern`` as dataset_files first found them: each prefix of each path."""
    pattern = pattern.rstrip("/")
    regex = glob_regex(pattern)
    levels = None if "**" in pattern else pattern.count("/") + 1
    folders = set()
    for path, file in evidence.files.items():
        if not file.exists:
            continue
        parts = path.split("/")
        if levels is None:
            depths: range | list[int] = range(1, len(parts))
        else:
            depths = [levels] if levels < len(parts) else []
        for depth in depths:
            folder = "/".join(parts[:depth])
            if regex.match(folder):
                folders.add(folder)
    return sorted(folders)


NAMES = ["data", "raw", "a.b", "x", "", "d?", "e*", "schema.json", "datasheet.md"]
GLOBS = ["data/*", "*", "*/*", "data/?", "data/**", "**", "*/raw", "a.b/*/", "d?/*", "data//*"]


def test_folders_match_the_prefix_by_prefix_search():
    rng = random.Random(11)
    for _ in range(3000):
        files = {}
        for _ in range(rng.randint(0, 8)):
            path = "/".join(rng.choice(NAMES) for _ in range(rng.randint(1, 4)))
            files[path] = {"path": path, "exists": rng.random() < 0.9}
        evidence = Evidence.model_validate({"project": {"key": "p"}, "files": files})
        pattern = rng.choice(GLOBS)
        assert _folders(evidence, pattern) == _every_prefix(evidence, pattern), (files, pattern)
