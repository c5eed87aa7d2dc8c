"""The embedded default's decision log (.phasegate/decisions.jsonl) after a kill -9 mid-write,
and at the size a long-running installation reaches."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from integrations.actions import DecisionLog


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_torn_last_line_is_cut_off_and_decisions_go_on(tmp_path, caplog):
    path = tmp_path / "decisions.jsonl"
    whole = json.dumps({"key": "a", "status": "passed"}) + "\n"
    path.write_text(whole + '{"key": "b", "sta')  # the process was killed mid-write
    log = DecisionLog(path)
    with caplog.at_level(logging.WARNING):
        assert log("c", {"status": "blocked"}, None) == "decisions.jsonl:2"
    assert "ends with a torn line (17 bytes" in caplog.text
    assert [r["key"] for r in _records(path)] == ["a", "c"]  # every line reads again
    assert log("a", {"status": "passed"}, None) == "decisions.jsonl:1"  # still idempotent
    assert log("b", {"status": "blocked"}, None) == "decisions.jsonl:3"  # redone: it was lost
    assert [r["key"] for r in _records(path)] == ["a", "c", "b"]


def test_a_whole_last_record_that_lost_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "decisions.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + json.dumps({"key": "b"}))
    log = DecisionLog(path)
    assert log("b", {}, None) == "decisions.jsonl:2"  # written before the kill: not again
    assert log("c", {}, None) == "decisions.jsonl:3"
    assert [r["key"] for r in _records(path)] == ["a", "b", "c"]


def test_an_unreadable_line_inside_is_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "decisions.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with caplog.at_level(logging.WARNING):
        assert DecisionLog(path)("b", {}, None) == "decisions.jsonl:3"
    assert "decisions.jsonl:2 is not a decision record; skipped" in caplog.text


def test_the_file_is_read_once_per_run_not_once_per_decision(tmp_path, monkeypatch):
    """A run that performs 200 decisions must not re-read (and re-parse) the whole growing
    file 200 times."""
    path = tmp_path / "decisions.jsonl"
    path.write_text("".join(json.dumps({"key": f"old-{n}"}) + "\n" for n in range(100)))
    reads = []
    real_open = Path.open

    def counting_open(self, mode="r", *args, **kwargs):
        if self == path and "r" in mode:
            reads.append(mode)
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    log = DecisionLog(path)
    for n in range(200):
        log(f"new-{n}", {"n": n}, None)
    assert log("old-7", {}, None) == "decisions.jsonl:8"
    monkeypatch.undo()
    assert len(reads) == 1, reads
    assert len(_records(path)) == 300
