"""A phasegate installation in a temporary folder: policies, a project checkout, a store.

Flows read their configuration from the environment (as in production), so a test sets
``PHASEGATE_*`` and works in its own folder, like an operator would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.runtime import runtime
from gates.scenario import load_scenario
from gates.store import Store
from tests.paths import EXAMPLES, POLICIES


@dataclass
class World:
    root: Path
    store: Store

    @property
    def checkout(self) -> Path:
        return self.root / "checkouts" / "churn-model"

    def use_evidence(self, example: str) -> None:
        """Make the project's checkout hold what an example scenario's evidence describes."""
        evidence = load_scenario(EXAMPLES / example).evidence.model_dump(
            mode="json", exclude={"project"}
        )
        shutil.rmtree(self.checkout, ignore_errors=True)
        (self.checkout / ".phasegate").mkdir(parents=True)
        for path, file in evidence.pop("files").items():
            target = self.checkout / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file["content"] or "")
        (self.checkout / ".phasegate" / "evidence.json").write_text(json.dumps(evidence))

    def event(
        self, delivery: str, kind: str = "issues.edited", repo: str = "acme/churn-model"
    ) -> None:
        self.store.add_inbox_event(
            source="github",
            delivery_id=delivery,
            kind=kind,
            payload={"action": kind.split(".")[-1], "repository": {"full_name": repo}},
            received_at=datetime.now(UTC),
        )

    def move_to(self, phase: str, project: str = "churn-model") -> None:
        """Put a project in ``phase`` directly, as if the gates before it had passed."""
        now = datetime.now(UTC)
        self.store.ensure_project(project, "framing", now)
        self.store.transition(
            project=project,
            to_phase=phase,
            kind="advance",
            reason="test setup",
            evaluation_id=None,
            at=now,
        )

    def approve(self, gate: str, *people: str, project: str = "churn-model") -> None:
        """The people approve what the gate's last evaluation showed them (its digest), now."""
        digest = self.store.last_evaluations(project)[gate].gate_digest
        for person in people:
            self.store.add_approval(
                project=project,
                gate=gate,
                person=person,
                decision="approve",
                digest=digest,
                reason=None,
                source="test",
                at=datetime.now(UTC),
            )

    def decisions(self) -> list[dict]:
        log = self.root / ".phasegate" / "decisions.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def make_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    shutil.copytree(POLICIES, tmp_path / "policies")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'phasegate.db'}"
    monkeypatch.setenv("PHASEGATE_DATABASE_URL", url)
    monkeypatch.setenv("PHASEGATE_POLICIES", str(tmp_path / "policies"))
    monkeypatch.setenv("PHASEGATE_CHECKOUTS", str(tmp_path / "checkouts"))
    runtime.cache_clear()
    store = Store(url)
    store.migrate()
    yield World(tmp_path, store)
    runtime.cache_clear()
