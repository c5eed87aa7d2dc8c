"""The ``phasegate`` command as a user runs it: a real process, real files, real database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.decisions import record
from gates.scenario import decide, load_scenario
from gates.store import Store
from tests.paths import EXAMPLES, POLICIES, ROOT


def phasegate(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PHASEGATE_POLICIES": str(POLICIES), **(env or {})}
    return subprocess.run(
        ["phasegate", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def test_validate_shipped_policies(tmp_path):
    done = phasegate("validate", str(POLICIES), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 gates, 1 project(s)" in done.stdout


def test_validate_reports_every_error_and_fails(policy_copy, tmp_path):
    gate = policy_copy / "gates" / "model-packaged.yaml"
    gate.write_text(
        gate.read_text()
        .replace("kind: mlflow_version", "kind: mlflow_versions")
        .replace("count: 1, allow_author", "count: one, allow_author", 1)
    )
    done = phasegate("validate", str(policy_copy), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert all(line.startswith(f"{gate}:") for line in lines)
    assert "unknown check kind 'mlflow_versions' (did you mean 'mlflow_version'?)" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("example", "code", "shown"),
    [
        ("problem-framed.passed.json", 0, "PASSED"),
        ("problem-framed.blocked.json", 1, "'Constraints' is still the template text"),
        ("model-packaged.awaiting.json", 3, "is the author of the gated work"),
        ("monitoring-attached.blocked.json", 1, "monitoring/config.yaml lacks rollback"),
    ],
)
def test_check_examples(tmp_path, example, code, shown):
    done = phasegate("check", "churn-model", "--evidence", str(EXAMPLES / example), cwd=tmp_path)
    assert done.returncode == code, done.stdout + done.stderr
    assert shown in done.stdout


def test_check_markdown_and_json(tmp_path):
    evidence = str(EXAMPLES / "model-packaged.blocked.json")
    markdown = phasegate(
        "check", "churn-model", "-e", evidence, "--format", "markdown", cwd=tmp_path
    )
    assert markdown.stdout.startswith("### ❌ Model packaged: blocked")
    as_json = phasegate("check", "churn-model", "-e", evidence, "--format", "json", cwd=tmp_path)
    result = json.loads(as_json.stdout)
    assert result["status"] == "blocked" and result["blocking"] is True
    assert [c["id"] for c in result["checks"] if c["outcome"] == "failed"] == [
        "version-packaged",
        "primary-metric",
        "model-card",
        "ci-green",
    ]


def test_check_bad_input_is_explained(tmp_path):
    wrong = phasegate(
        "check", "fraud-model", "-e", str(EXAMPLES / "problem-framed.passed.json"), cwd=tmp_path
    )
    assert wrong.returncode == 2
    assert "is evidence about 'churn-model', not 'fraud-model'" in wrong.stderr
    broken = tmp_path / "ev.json"
    broken.write_text('{"project": {"key": "churn-model"}, "github": {"isues": []}}')
    done = phasegate("check", "churn-model", "-e", str(broken), cwd=tmp_path)
    assert done.returncode == 2 and "github.isues: Extra inputs are not permitted" in done.stderr
    missing = phasegate("check", "churn-model", "-e", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    gate = phasegate(
        "check",
        "churn-model",
        "-e",
        str(EXAMPLES / "problem-framed.passed.json"),
        "--gate",
        "nope",
        cwd=tmp_path,
    )
    assert gate.returncode == 2 and "unknown gate 'nope'" in gate.stderr


def test_record_advances_and_status_shows_it(tmp_path):
    env = {"PHASEGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}"}
    blocked = phasegate(
        "check",
        "churn-model",
        "-e",
        str(EXAMPLES / "problem-framed.blocked.json"),
        "--record",
        cwd=tmp_path,
        env=env,
    )
    assert blocked.returncode == 1 and "churn-model stays in framing" in blocked.stderr
    passed = phasegate(
        "check",
        "churn-model",
        "-e",
        str(EXAMPLES / "problem-framed.passed.json"),
        "--record",
        cwd=tmp_path,
        env=env,
    )
    assert passed.returncode == 0, passed.stderr
    assert "churn-model: framing → data (gate problem-framed passed)" in passed.stderr
    status = json.loads(phasegate("status", "--json", cwd=tmp_path, env=env).stdout)
    assert status[0]["project"] == "churn-model" and status[0]["phase"] == "data"
    assert status[0]["gates"]["problem-framed"]["status"] == "passed"
    text = phasegate("status", cwd=tmp_path, env=env).stdout
    assert "churn-model: data" in text and "problem-framed" in text
    # The next check defaults to the gate out of the new phase.
    nxt = phasegate(
        "check",
        "churn-model",
        "-e",
        str(EXAMPLES / "data-assumptions-checked.passed.json"),
        cwd=tmp_path,
        env=env,
    )
    assert "gate data-assumptions-checked" in nxt.stdout


def test_audit_verify_detects_an_edited_row(tmp_path):
    db = tmp_path / "audit.db"
    env = {"PHASEGATE_DATABASE_URL": f"sqlite:///{db}"}
    phasegate(
        "check",
        "churn-model",
        "-e",
        str(EXAMPLES / "problem-framed.passed.json"),
        "--record",
        cwd=tmp_path,
        env=env,
    )
    ok = phasegate("audit", "verify", cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    tampered = phasegate("audit", "verify", cwd=tmp_path, env=env)
    assert tampered.returncode == 1
    assert "2" in tampered.stdout and "altered" in tampered.stdout


def test_policy_tests_pass_and_a_broken_expectation_fails(policy_copy, tmp_path):
    done = phasegate("test", str(policy_copy), cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith("18 passed, 0 failed")
    test_file = policy_copy / "tests" / "model-packaged.yaml"
    test_file.write_text(
        test_file.read_text().replace(
            "failing: [version-packaged, primary-metric,", "failing: [primary-metric,"
        )
    )
    done = phasegate("test", str(policy_copy), cwd=tmp_path)
    assert done.returncode == 1
    assert "expected failing checks [ci-green, model-card, primary-metric]" in done.stdout
    assert "version-packaged: found churn-classifier v4: no signature" in done.stdout


def test_schema_file_is_current(tmp_path):
    done = phasegate("schema", cwd=tmp_path)
    shipped = (ROOT / "policies" / "schema.json").read_text()
    assert json.loads(done.stdout) == json.loads(shipped), (
        "policies/schema.json is stale: run `phasegate schema > policies/schema.json`"
    )


def test_demo_walks_the_lifecycle(policy_copy, tmp_path):
    done = phasegate(
        "demo",
        "--policies",
        str(policy_copy),
        "--examples",
        str(tmp_path / "examples" / "churn-model"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "churn-model: framing → data (gate problem-framed passed)" in done.stdout
    assert "recorded; churn-model stays in model-development" in done.stdout
    assert "churn-model is now in phase 'operation'" in done.stdout
    assert "chain intact" in done.stdout


def test_events_lists_what_arrived_and_why_it_was_ignored(tmp_path):
    from datetime import UTC, datetime

    from gates.store import Store

    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = Store(url)
    store.migrate()
    for n in range(3):
        row, _ = store.add_inbox_event(
            source="github",
            delivery_id=f"d{n}",
            kind="push",
            payload={},
            received_at=datetime.now(UTC),
        )
    store.finish_inbox_event(row.id, "ignored", "repository acme/x belongs to no project")
    env = {"PHASEGATE_DATABASE_URL": url}
    text = phasegate("events", "--limit", "2", cwd=tmp_path, env=env).stdout
    assert text.splitlines()[0] == "inbox: 1 ignored, 2 pending"
    assert [line.split()[0] for line in text.splitlines()[1:]] == ["#2", "#3"]  # the latest two
    assert "ignored — repository acme/x belongs to no project" in text
    ignored = json.loads(
        phasegate("events", "--status", "ignored", "--json", cwd=tmp_path, env=env).stdout
    )
    assert [(e["delivery_id"], e["reason"]) for e in ignored] == [
        ("d2", "repository acme/x belongs to no project")
    ]


def test_a_control_character_in_a_repository_file_never_crashes_check(tmp_path):
    scenario = json.loads((EXAMPLES / "monitoring-attached.passed.json").read_text())
    config = scenario["evidence"]["files"]["monitoring/config.yaml"]
    config["content"] = config["content"].replace("owner:", "owner:\x00", 1)
    path = tmp_path / "nul.json"
    path.write_text(json.dumps(scenario))
    done = phasegate("check", "churn-model", "-e", str(path), "--format", "json", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    assert result["status"] in ("error", "blocked") and done.returncode in (1, 4)
    check = next(c for c in result["checks"] if c["id"] == "monitoring-config")
    assert check["outcome"] in ("error", "failed")
    assert "U+0000" in check["found"] or "#x0000" in check["found"]


WAIVE = ["waive", "churn-model", "--gate", "problem-framed", "--check", "solution-architecture"]


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (
            ["--by", "bob", "--reason", "x", "--for", "7d"],
            "waiver by bob refused: may not waive 'solution-architecture' (needs role ds-lead)",
        ),
        (["--by", "alice", "--reason", "  ", "--for", "7d"], "a waiver needs a reason"),
        (
            ["--by", "alice", "--reason", "x", "--for", "60d"],
            "for 60d lasts longer than the policy allows (30d at most)",
        ),
        (["--by", "zed", "--reason", "x", "--for", "7d"], "unknown person 'zed'"),
        (["--by", "alice", "--reason", "x", "--for", "a week"], "--for: invalid duration"),
    ],
)
def test_waive_refuses_what_the_policies_do_not_allow(tmp_path, args, refusal):
    env = {"PHASEGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}"}
    done = phasegate(*WAIVE, *args, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert refusal in done.stderr
    assert "Traceback" not in done.stderr
    db = tmp_path / "pg.db"
    if db.exists():  # nothing stored: no waiver, no re-evaluation queued
        with sqlite3.connect(db) as connection:
            assert list(connection.execute("SELECT count(*) FROM waivers")) == [(0,)]
            assert list(connection.execute("SELECT count(*) FROM inbox_events")) == [(0,)]


def test_waive_unknown_check_gate_or_project(tmp_path):
    env = {"PHASEGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}"}
    rest = ["--by", "alice", "--reason", "x", "--for", "7d"]
    check = phasegate(*WAIVE[:-1], "nope", *rest, cwd=tmp_path, env=env)
    assert check.returncode == 2
    assert "gate problem-framed has no check 'nope' (its checks: ask-sections," in check.stderr
    gate = phasegate("waive", "churn-model", "-g", "nope", "-c", "x", *rest, cwd=tmp_path, env=env)
    assert gate.returncode == 2 and "unknown gate 'nope'" in gate.stderr
    project = phasegate("waive", "fraud", "-g", "problem-framed", "-c", "x", *rest, cwd=tmp_path)
    assert project.returncode == 2 and "unknown project 'fraud'" in project.stderr


def test_a_granted_waiver_is_stored_audited_listed_and_applied(tmp_path):
    env = {"PHASEGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}"}
    granted = phasegate(
        *WAIVE,
        "--by",
        "alice-ds",  # known by their GitHub login too
        "--reason",
        "Standard batch template; doc in sprint 48",
        "--for",
        "7d",
        cwd=tmp_path,
        env=env,
    )
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.startswith(
        "waiver #1: alice waives problem-framed / solution-architecture for churn-model until"
    )
    assert "queued for re-evaluation (inbox event #1)" in granted.stdout
    [waiver] = json.loads(phasegate("waivers", "--json", cwd=tmp_path, env=env).stdout)
    assert (waiver["project"], waiver["check"], waiver["person"]) == (
        "churn-model",
        "solution-architecture",
        "alice",
    )
    text = phasegate("waivers", "churn-model", cwd=tmp_path, env=env).stdout
    assert "churn-model · problem-framed · solution-architecture: waived by alice" in text
    assert "(6d left)" in text and "reason: Standard batch template" in text
    events = phasegate("events", cwd=tmp_path, env=env).stdout
    assert "phasegate  waiver.granted" in events
    with sqlite3.connect(tmp_path / "pg.db") as connection:
        actions = [row[0] for row in connection.execute("SELECT action FROM audit_log")]
    assert "waiver.granted" in actions
    # The next evaluation applies it: the missing architecture doc is waived.
    scenario = json.loads((EXAMPLES / "problem-framed.waived.json").read_text())
    scenario.pop("waivers")
    scenario.pop("now")
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    done = phasegate(
        "check", "churn-model", "-e", str(path), "--record", "-f", "json", cwd=tmp_path, env=env
    )
    result = json.loads(done.stdout)
    check = next(c for c in result["checks"] if c["id"] == "solution-architecture")
    assert (check["outcome"], check["waiver"]["person"]) == ("waived", "alice")
    assert result["status"] == "passed", done.stdout


def test_record_stores_the_scenarios_approvals_and_waivers(tmp_path):
    db = tmp_path / "pg.db"
    env = {"PHASEGATE_DATABASE_URL": f"sqlite:///{db}"}
    example = str(EXAMPLES / "problem-framed.waived.json")
    for _ in range(2):  # recorded twice: stored once
        done = phasegate("check", "churn-model", "-e", example, "--record", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(db) as connection:
        approvals = sorted(connection.execute("SELECT person, source FROM approvals"))
        waivers = list(connection.execute("SELECT check_id, person FROM waivers"))
        actions = [row[0] for row in connection.execute("SELECT action FROM audit_log")]
    assert approvals == [
        ("alice", f"scenario {example}"),
        ("bob", f"scenario {example}"),
    ]
    assert waivers == [("solution-architecture", "alice")]
    assert actions.count("approval.approve") == 2 and actions.count("waiver.granted") == 1
    # The recorded decision is explained by the store alone: evaluated on what it holds.
    [evaluation] = [
        r
        for r in json.loads(phasegate("status", "--json", cwd=tmp_path, env=env).stdout)[0][
            "gates"
        ].items()
    ]
    assert evaluation[1]["status"] == "passed"


def test_record_refuses_a_scenario_waiver_the_policies_do_not_allow(tmp_path):
    db = tmp_path / "pg.db"
    env = {"PHASEGATE_DATABASE_URL": f"sqlite:///{db}"}
    scenario = json.loads((EXAMPLES / "problem-framed.waived.json").read_text())
    scenario["waivers"][0]["person"] = "bob"
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    done = phasegate("check", "churn-model", "-e", str(path), "--record", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert (
        "waiver of 'solution-architecture' by bob: may not waive 'solution-architecture' "
        "(needs role ds-lead); nothing was recorded"
    ) in done.stderr
    with sqlite3.connect(db) as connection:
        for table in ("approvals", "evaluations", "projects", "audit_log"):
            assert list(connection.execute(f"SELECT count(*) FROM {table}")) == [(0,)], table


def test_status_shows_who_rejected_and_why(tmp_path):
    env = {"PHASEGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}"}
    scenario = json.loads((EXAMPLES / "problem-framed.passed.json").read_text())
    scenario["approvals"][0].update(
        decision="reject", reason="Success criteria do not name the retention target"
    )
    path = tmp_path / "rejected.json"
    path.write_text(json.dumps(scenario))
    done = phasegate("check", "churn-model", "-e", str(path), "--record", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    text = phasegate("status", cwd=tmp_path, env=env).stdout
    assert "problem-framed" in text and "blocked" in text
    assert "rejected by bob: Success criteria do not name the retention target" in text


def test_status_says_which_pull_request_a_decision_was_made_on(tmp_path, default_policies):
    url = f"sqlite:///{tmp_path / 'pg.db'}"
    store = Store(url)
    store.migrate()
    store.ensure_project("churn-model", "model-development", datetime.now(UTC))
    result = decide(default_policies, load_scenario(EXAMPLES / "model-packaged.blocked.json"))
    evidence = load_scenario(EXAMPLES / "model-packaged.blocked.json").evidence
    record(store, default_policies, result, "model-development", evidence, move=None)  # PR #14
    env = {"PHASEGATE_DATABASE_URL": url}
    text = phasegate("status", cwd=tmp_path, env=env).stdout
    [line] = [x for x in text.splitlines() if "model-packaged" in x]
    assert "blocked" in line and line.endswith("on PR #14")
    report = json.loads(phasegate("status", "--json", cwd=tmp_path, env=env).stdout)
    assert report[0]["gates"]["model-packaged"]["pull_request"] == 14


@pytest.mark.usefixtures("prefect_harness")
def test_the_running_engine_applies_a_granted_waiver_on_its_next_pass(world):
    from flows.process_inbox import process_inbox

    world.use_evidence("problem-framed.waived.json")  # no solution architecture doc
    world.event("d-1")
    process_inbox()
    [before] = world.store.evaluations("churn-model")
    outcomes = {c["id"]: c["outcome"] for c in before.result["checks"]}
    assert outcomes["solution-architecture"] == "failed"

    granted = phasegate(
        *WAIVE,
        "--by",
        "alice",
        "--reason",
        "Standard batch template",
        "--for",
        "14d",
        cwd=world.root,
    )
    assert granted.returncode == 0, granted.stderr
    assert process_inbox()["decisions"] == 1  # the queued re-evaluation, no webhook needed
    after = world.store.last_evaluations("churn-model")["problem-framed"]
    check = next(c for c in after.result["checks"] if c["id"] == "solution-architecture")
    assert (check["outcome"], check["waiver"]["person"]) == ("waived", "alice")
