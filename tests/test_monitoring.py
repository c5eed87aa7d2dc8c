"""Monitoring: the config file and its schema, Evidently reports, heartbeats, and alerts from
Alertmanager and Grafana through the receiver to signals, alert records and regressions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from gates.active import ActivePolicies
from gates.checks import KINDS
from gates.evaluate import evaluate
from gates.evidence import Evidence, gate_digest
from gates.evidently import summary
from gates.monitoring import REQUIRED, validate
from integrations.monitoring import inbound
from integrations.monitoring.evidence import MonitoringSource
from integrations.receiver import create_app
from phasegate.cli import app as cli
from phasegate.settings import Settings
from tests import signing
from tests.paths import EXAMPLES, ROOT
from tests.servers import client, serving

CONFIG = """\
model: churn-classifier
owner: dave
alert_channel: "#churn-model-alerts"
metrics: [auc_weekly, precision_at_5pct]
drift:
  - tenure_months
  - {column: monthly_charges, test: ks, threshold: 0.1}
thresholds: {auc_weekly: 0.82}
retraining: weekly, Monday 02:00 UTC
rollback: churn-classifier@champion-previous
"""

SIGNATURE = {"inputs": [{"name": "tenure_months"}, {"name": "monthly_charges"}]}


def check(content: str, signature: dict | None = SIGNATURE, **params):
    kind = KINDS["monitoring_config"]
    version = {"name": "churn-classifier", "version": "4", "status": "READY"}
    evidence = Evidence.model_validate(
        {
            "project": {"key": "p", "models": ["churn-classifier"]},
            "files": {
                "monitoring/config.yaml": {"path": "monitoring/config.yaml", "content": content}
            },
            "mlflow": {"version": {**version, "signature": signature}},
        }
    )
    return kind.run(
        kind.params.model_validate({"path": "monitoring/config.yaml", **params}), evidence
    )


# -- the config file ------------------------------------------------------------------------


def test_schema_file_is_current():
    done = CliRunner().invoke(cli, ["schema", "--monitoring-config"])
    shipped = (ROOT / "policies" / "monitoring-config.schema.json").read_text()
    assert json.loads(done.output) == json.loads(shipped), (
        "policies/monitoring-config.schema.json is stale: run "
        "`phasegate schema --monitoring-config > policies/monitoring-config.schema.json`"
    )
    assert json.loads(shipped)["required"] == REQUIRED  # the check requires what the schema does


def test_a_complete_config_passes():
    finding = check(CONFIG)
    assert finding.ok and finding.found == "monitoring/config.yaml complete for churn-classifier"


@pytest.mark.parametrize(
    ("content", "line", "found"),
    [
        (
            CONFIG.replace("threshold: 0.1", "threshold: high"),
            7,
            "monitoring/config.yaml:7: drift[1].threshold: Input should be a valid number, "
            "unable to parse string as a number (found 'high')",
        ),
        (
            CONFIG.replace("{auc_weekly: 0.82}", "{auc_daily: 0.82}"),
            8,
            "monitoring/config.yaml:8: thresholds.auc_daily: not a metric watched",
        ),
        (
            CONFIG.replace("metrics: [auc_weekly, precision_at_5pct]", "metrics: auc_weekly"),
            4,
            "monitoring/config.yaml:4: metrics: Input should be a valid list (found 'auc_weekly')",
        ),
        (
            CONFIG.replace("alert_channel:", "alert_chanel:").replace("rollback: ", "# "),
            3,
            "monitoring/config.yaml lacks alert_channel (is 'alert_chanel' a typo?), rollback",
        ),
        (
            CONFIG.replace("model: churn-classifier", "model: other-model"),
            1,
            "monitoring/config.yaml monitors 'other-model', not a registered model of the "
            "project (churn-classifier)",
        ),
        (
            CONFIG.replace("owner: dave", "owner: dave\x00"),
            2,
            "monitoring/config.yaml:2: invalid YAML: control character U+0000 is not allowed",
        ),
        (
            CONFIG.replace("owner: dave", "owner: \x1b[31mdave"),
            2,
            "monitoring/config.yaml:2: invalid YAML: control character U+001B is not allowed",
        ),
        (
            CONFIG.replace("- tenure_months", "- tenure"),
            1,
            "monitoring/config.yaml drift checks tenure, not input(s) of churn-classifier v4 "
            "(monthly_charges and tenure_months)",
        ),
    ],
)
def test_mistakes_are_named_with_their_line(content, line, found):
    finding = check(content)
    assert not finding.ok
    assert finding.found == found
    assert finding.location.line == line


def test_relaxed_requirements_still_validate_what_is_there():
    minimal = "model: churn-classifier\nowner: dave\nthresholds: {auc: x}\n"
    finding = check(minimal, require=["model", "owner"])
    assert finding.found.startswith("monitoring/config.yaml:3: thresholds.auc: Input should be")
    assert check("model: churn-classifier\nowner: dave\n", require=["model", "owner"]).ok


def test_drift_columns_are_only_compared_with_a_known_signature():
    assert check(CONFIG.replace("- tenure_months", "- tenure"), signature=None).ok
    assert check(CONFIG.replace("- tenure_months", "- tenure"), drift_on_inputs=False).ok
    assert validate("- a list").problems[0].message == "not a mapping of settings"


ALERTMANAGER_CONFIG = """\
route: {receiver: phasegate}
receivers:
  - name: phasegate
    webhook_configs: [{url: "https://phasegate.example/webhooks/alerts"}]
"""


def run_config(files: dict[str, str], models: list[str], mlflow: dict | None = None, **params):
    kind = KINDS["monitoring_config"]
    evidence = Evidence.model_validate(
        {
            "project": {"key": "p", "models": models},
            "files": {path: {"path": path, "content": text} for path, text in files.items()},
            "mlflow": mlflow or {},
        }
    )
    return kind.run(kind.params.model_validate(params), evidence)


def test_the_default_config_is_monitoring_config_yaml_not_the_first_yaml_there():
    files = {"monitoring/alertmanager.yaml": ALERTMANAGER_CONFIG, "monitoring/config.yaml": CONFIG}
    finding = run_config(files, ["churn-classifier"])
    assert finding.ok, finding.found
    assert finding.found == "monitoring/config.yaml complete for churn-classifier"
    assert finding.expected.startswith("a valid monitoring config at monitoring/config.yaml")


def test_with_a_glob_the_candidate_model_s_config_is_the_one_checked():
    explainer = CONFIG.replace("churn-classifier", "churn-explainer")
    files = {
        "monitoring/models/churn-classifier.yaml": CONFIG,
        "monitoring/models/churn-explainer.yaml": explainer.replace("owner: dave", "owner: ''"),
        "monitoring/models/notes.yaml": "just: notes\n",  # names no model: not a config
    }
    models = ["churn-explainer", "churn-classifier"]
    candidate = {"version": {"name": "churn-classifier", "version": "4", "status": "READY"}}
    glob = {"path": "monitoring/models/*.yaml"}
    finding = run_config(files, models, candidate, **glob)
    assert finding.ok, finding.found  # the explainer's broken config is not this candidate's
    assert finding.found == "monitoring/models/churn-classifier.yaml complete for churn-classifier"

    other = {"version": {"name": "churn-explainer", "version": "2", "status": "READY"}}
    finding = run_config(files, models, other, **glob)
    assert finding.found == "monitoring/models/churn-explainer.yaml lacks owner"

    typo = {**files, "monitoring/models/typo.yaml": CONFIG.replace("churn-", "chrun-")}
    finding = run_config(typo, models, candidate, **glob)
    assert finding.found == (
        "monitoring/models/typo.yaml monitors 'chrun-classifier': not a registered model of the "
        "project (churn-explainer and churn-classifier)"
    )
    assert finding.location.path == "monitoring/models/typo.yaml"

    del files["monitoring/models/churn-classifier.yaml"]
    finding = run_config(files, models, candidate, **glob)
    assert finding.found == (
        "no config at monitoring/models/*.yaml for churn-classifier (monitoring/models/"
        "churn-explainer.yaml monitors churn-explainer; monitoring/models/notes.yaml name no model)"
    )


def test_the_config_must_name_the_registered_model_being_deployed():
    files = {"monitoring/config.yaml": CONFIG}
    finding = run_config(files, [])
    assert not finding.ok
    assert finding.found == (
        "monitoring/config.yaml monitors 'churn-classifier', but the project names no "
        "registered model (mlflow.models in its Project file)"
    )

    deployed = {"version": {"name": "churn-explainer", "version": "2", "status": "READY"}}
    finding = run_config(files, ["churn-explainer", "churn-classifier"], deployed)
    assert finding.found == (
        "monitoring/config.yaml monitors 'churn-classifier', but the version being deployed "
        "is churn-explainer v2"
    )

    unregistered = {"model": "churn-classifier", "version": None}  # the registry was read
    finding = run_config(files, ["churn-classifier"], unregistered)
    assert finding.found == (
        "monitoring/config.yaml monitors 'churn-classifier', which has no version in the "
        "MLflow registry"
    )
    assert run_config(files, ["churn-classifier"]).ok  # no registry read: the project's list


# -- Evidently reports ----------------------------------------------------------------------

REPORT_0_7 = {
    "metrics": [
        {
            "id": "15e89f895b482f9b84ba7274ed18a106",
            "metric_name": "DriftedColumnsCount(drift_share=0.5)",
            "config": {"type": "evidently:metric_v2:DriftedColumnsCount", "drift_share": 0.5},
            "value": {"count": 1.0, "share": 0.5},
        },
        {
            "metric_name": "ValueDrift(column=tenure_months,method=K-S p_value,threshold=0.05)",
            "config": {
                "type": "evidently:metric_v2:ValueDrift",
                "column": "tenure_months",
                "method": "K-S p_value",
                "threshold": 0.05,
            },
            "value": 0.001,
        },
        {
            "metric_name": "ValueDrift(column=monthly_charges,method=Wasserstein distance (normed),threshold=0.1)",
            "config": {"type": "evidently:metric_v2:ValueDrift", "threshold": 0.1},
            "value": 0.04,
        },
    ],
    "tests": [
        {"name": "Share of drifted columns", "status": "FAIL"},
        {"name": "Missing values", "status": "SUCCESS"},
    ],
}

REPORT_LEGACY = {
    "version": "0.4.33",
    "timestamp": "2026-11-20 10:00:00.000000",
    "metrics": [
        {
            "metric": "DatasetDriftMetric",
            "result": {
                "drift_share": 0.5,
                "number_of_columns": 4,
                "number_of_drifted_columns": 1,
                "share_of_drifted_columns": 0.25,
                "dataset_drift": False,
            },
        },
        {
            "metric": "DataDriftTable",
            "result": {
                "drift_by_columns": {
                    "tenure_months": {"column_name": "tenure_months", "drift_detected": True},
                    "monthly_charges": {"column_name": "monthly_charges", "drift_detected": False},
                }
            },
        },
    ],
}


def test_reports_are_summed_up_in_either_evidently_format():
    assert summary(REPORT_0_7) == {
        "format": "evidently",
        "metrics": 3,
        "drifted_share": 0.5,
        "dataset_drift": True,
        "drifted_columns": ["tenure_months"],
        "tests": {"total": 2, "failed": 1},
        "failed_tests": ["Share of drifted columns"],
    }
    assert summary(REPORT_LEGACY) == {
        "format": "evidently-legacy",
        "metrics": 2,
        "dataset_drift": False,
        "drifted_share": 0.25,
        "drifted_columns": ["tenure_months"],
        "timestamp": "2026-11-20 10:00:00.000000",
    }


FIXTURES = ROOT / "tests" / "fixtures" / "evidently"  # written by Evidently 0.7.23 itself
DRIFTED = {"dataset_drift": True, "drifted_share": 0.5, "drifted_columns": ["tenure_months"]}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_real_evidently_reports_in_every_shape_say_the_same():
    plain, dumped, legacy = (
        summary(fixture(n)) for n in ("snapshot.json", "snapshot.dumps.json", "legacy-report.json")
    )
    tests = {"tests": {"total": 3, "failed": 2}}
    assert plain == {"format": "evidently", "metrics": 3, **DRIFTED, **tests} | {
        "failed_tests": [
            "Share of Drifted Columns: Less 0.500",
            "Value Drift for column tenure_months",
        ]
    }
    assert dumped == {**plain, "timestamp": "2026-12-01T18:09:21.384000"}
    assert {k: legacy[k] for k in DRIFTED} == DRIFTED and legacy["format"] == "evidently-legacy"
    # Evidently's main branch writes only the metric's id text, no config mapping
    newest = {
        "metrics": [
            {"id": m["id"], "metric_id": m["metric_name"], "value": m["value"]}
            for m in fixture("snapshot.json")["metrics"]
        ]
    }
    assert summary(newest) == {"format": "evidently", "metrics": 3, **DRIFTED}


def signal_from_files(files: dict[str, str], signals: list | None = None, **params):
    kind = KINDS["monitoring_signal"]
    evidence = Evidence.model_validate(
        {
            "project": {"key": "churn-model", "models": ["churn-classifier"]},
            "files": {path: {"path": path, "content": text} for path, text in files.items()},
            "monitoring": {"signals": signals or []},
        }
    )
    return kind.run(kind.params.model_validate(params), evidence)


@pytest.mark.parametrize("shape", ["snapshot.json", "snapshot.dumps.json", "legacy-report.json"])
def test_a_report_committed_to_the_repository_is_a_first_signal(shape):
    reports = {"paths": ["monitoring/reports/**/*.json"]}
    committed = {"monitoring/reports/2026-12/churn.json": (FIXTURES / shape).read_text()}
    finding = signal_from_files(committed, **reports)
    assert finding.ok, finding.found
    assert finding.found.startswith(
        "1 report in the repository: monitoring/reports/2026-12/churn.json"
    )
    assert not signal_from_files(committed).ok  # without paths, only what was posted counts


def test_a_file_at_the_report_paths_that_is_no_report_is_named():
    reports = {"paths": ["monitoring/reports/*.json"]}
    finding = signal_from_files({"monitoring/reports/x.json": '{"alerts": []}'}, **reports)
    assert not finding.ok
    assert finding.found == (
        "nothing received from monitoring yet; monitoring/reports/x.json: not an Evidently "
        "report: expected a 'metrics' or 'tests' list (snapshot.json()) or 'metric_results' "
        "(snapshot.dumps())"
    )
    assert finding.location.path == "monitoring/reports/x.json"
    broken = signal_from_files({"monitoring/reports/x.json": '{"metrics": [\n'}, **reports)
    assert broken.found.startswith("nothing received from monitoring yet; monitoring/reports/")
    assert "invalid JSON" in broken.found and broken.location.line == 2
    assert signal_from_files({}, **reports).found == (
        "nothing received from monitoring yet, and no report at monitoring/reports/*.json"
    )
    with pytest.raises(ValueError, match="add 'report' to kinds"):
        KINDS["monitoring_signal"].params.model_validate({"kinds": ["heartbeat"], **reports})


def test_the_shipped_gate_counts_a_committed_report(default_policies):
    scenario = json.loads((EXAMPLES / "monitoring-attached.passed.json").read_text())
    evidence = scenario["evidence"]
    evidence["monitoring"] = {"signals": []}
    evidence["files"]["monitoring/reports/2026-12-01.json"] = {
        "path": "monitoring/reports/2026-12-01.json",
        "content": (FIXTURES / "snapshot.json").read_text(),
    }
    result = evaluate(
        default_policies.gates["monitoring-attached"],
        Evidence.model_validate(evidence),
        [],
        [],
        datetime.now(UTC),
        default_policies,
    )
    [signal] = [c for c in result.checks if c.id == "first-signal"]
    assert signal.outcome == "passed", signal.found
    assert signal.found == "1 report in the repository: monitoring/reports/2026-12-01.json"


def test_the_receiver_takes_reports_with_the_alerts_token(world, monkeypatch):
    monkeypatch.setenv("PHASEGATE_ALERTS_TOKEN", signing.ALERTS_TOKEN)
    body = json.dumps(REPORT_0_7).encode()
    url = "/webhooks/monitoring/reports"
    with serving(create_app(Settings(), world.store)) as base, client(base) as http:
        assert http.post(url, content=body, headers=signing.alerts("nope")).status_code == 401
        answer = http.post(f"{url}?model=churn-classifier", content=body, headers=signing.alerts())
        assert answer.status_code == 202
        again = http.post(f"{url}?model=churn-classifier", content=body, headers=signing.alerts())
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        nameless = http.post(url, content=body, headers=signing.alerts())
        assert nameless.status_code == 400 and "?model=" in nameless.json()["error"]
        # snapshot.json() carries no metadata: only the query string can name its model
        plain = (FIXTURES / "snapshot.json").read_bytes()
        assert http.post(url, content=plain, headers=signing.alerts()).status_code == 400
        # snapshot.dumps() does: Report(..., model_id="churn-classifier")
        dumped = (FIXTURES / "snapshot.dumps.json").read_bytes()
        assert http.post(url, content=dumped, headers=signing.alerts()).status_code == 202
        other = http.post(f"{url}?model=m", content=b'{"alerts": []}', headers=signing.alerts())
        assert other.status_code == 400 and "not an Evidently report" in other.json()["error"]
    rows = world.store.inbox_events(source="monitoring")
    assert [(r.kind, r.payload["subject"]) for r in rows] == [
        ("report", {"model": "churn-classifier"}),
        ("report", {"model": "churn-classifier"}),
    ]


# -- what the inbox tells about a project ---------------------------------------------------


def add(world, delivery: str, kind: str, payload: dict, at: datetime | None = None) -> None:
    world.store.add_inbox_event(
        source="monitoring",
        delivery_id=delivery,
        kind=kind,
        payload=payload,
        received_at=at or datetime.now(UTC),
    )


def source(world, default_policies) -> MonitoringSource:
    return MonitoringSource(world.store, lambda: default_policies, Settings().heartbeat_alerts)


ODD_REPORTS = [  # each passes the receiver's "is it a report" test
    {"metric_results": {"a": {"metric_value_location": {"metric": "x"}, "tests": 5}}},
    {"metric_results": {"a": {}}, "top_level_metrics": [["a"], {"b": 1}, "a"]},
    {"metrics": [{"metric": "DataDriftTable", "result": {"drift_by_columns": {"c": 1}}}]},
    {"metrics": [{"metric_id": 7, "config": [], "value": "x"}], "tests": "FAIL"},
]


def test_a_report_of_odd_shape_is_passed_over_and_the_window_still_reads(world, default_policies):
    """Whatever the receiver kept is read again by every evaluation of the monitoring window:
    one report with a field of an unexpected type must not stop them all."""
    for n, report in enumerate(ODD_REPORTS):
        add(
            world,
            f"odd-{n}",
            "report",
            {"subject": {"model": "churn-classifier"}, "report": report},
        )
    watchdog = {"alertname": "Watchdog", "project": "churn-model"}
    add(world, "hb", "alert.firing", signing.alertmanager(labels=watchdog))

    collected = source(world, default_policies).collect(default_policies.projects["churn-model"])

    signals = collected["monitoring"]["signals"]
    assert {s["kind"] for s in signals} == {"report", "heartbeat"}
    [report] = [s for s in signals if s["kind"] == "report"]
    assert report["status"] is None and report["summary"]["format"] == "evidently"


def test_signals_are_the_first_of_each_kind_and_alerts_their_latest_state(world, default_policies):
    churn = default_policies.projects["churn-model"]
    long_ago = datetime.now(UTC) - timedelta(days=40)
    watchdog = {"alertname": "Watchdog", "project": "churn-model", "category": "none"}
    add(world, "old", "alert.firing", signing.alertmanager(labels=watchdog), at=long_ago)
    assert source(world, default_policies).collect(churn) == {}  # outside the 30-day window

    add(world, "hb-1", "alert.firing", signing.alertmanager(labels=watchdog))
    add(
        world,
        "hb-2",
        "alert.firing",
        signing.alertmanager(labels=watchdog, starts="2026-11-21T10:00:00Z"),
    )
    add(world, "r-1", "report", {"subject": {"model": "churn-classifier"}, "report": REPORT_0_7})
    drift = {"model": "churn-classifier"}
    add(world, "a-1", "alert.firing", signing.alertmanager(labels=drift))
    add(world, "a-2", "alert.resolved", signing.alertmanager("resolved", labels=drift))
    add(world, "x-1", "alert.firing", signing.alertmanager(labels={"project": "other"}))

    facts = source(world, default_policies).collect(churn)["monitoring"]

    signals = [(s["kind"], s["status"]) for s in facts["signals"]]
    assert signals == [("heartbeat", "firing"), ("report", "drift"), ("alert", "firing")]
    assert facts["signals"][1]["summary"]["drifted_columns"] == ["tenure_months"]
    [alert] = facts["alerts"]  # the heartbeat is no alert; the other project's is not ours
    assert (alert["name"], alert["status"]) == ("FeatureDrift", "resolved")
    assert Evidence.model_validate({"project": {"key": "churn-model"}, "monitoring": facts})


HEARTBEATS = Settings().heartbeat_alerts


def watchdog(starts: str) -> dict:
    """Prometheus' always-firing Watchdog, as Alertmanager repeats it (identical every time)."""
    return signing.alertmanager(
        labels={"alertname": "Watchdog", "project": "churn-model", "category": "meta"},
        starts=starts,
    )


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_firing_heartbeat_is_kept_once_a_day_other_repeats_once():
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    body = watchdog("2026-10-01T00:00:00Z")
    today = inbound.delivery_id(body, HEARTBEATS, now)
    assert inbound.delivery_id(body, HEARTBEATS, now + timedelta(hours=14)) == today
    assert inbound.delivery_id(body, HEARTBEATS, now + timedelta(days=1)) != today
    drift = signing.alertmanager(labels={"project": "churn-model"})
    assert inbound.delivery_id(drift, HEARTBEATS, now) == inbound.delivery_id(
        drift, HEARTBEATS, now + timedelta(days=3)
    )  # a repeat of a real alert is one delivery: it must not regress a project every day
    resolved = signing.alertmanager(
        "resolved", labels={"alertname": "Watchdog", "project": "churn-model"}
    )
    assert inbound.delivery_id(resolved, HEARTBEATS, now) == inbound.delivery_id(
        resolved, HEARTBEATS, now + timedelta(days=1)
    )


def test_an_alive_heartbeat_never_ages_out_of_the_window(world, default_policies, monkeypatch):
    churn = default_policies.projects["churn-model"]
    now = datetime.now(UTC)
    started = now - timedelta(days=45)  # Watchdog fires as long as Prometheus runs
    body = watchdog(iso(started))
    # first notification 31 days ago (kept under the id Alertmanager's repeats then shared)
    add(world, inbound.delivery_id(body), "alert.firing", body, at=now - timedelta(days=31))
    assert source(world, default_policies).collect(churn) == {}  # it left the 30-day window

    monkeypatch.setenv("PHASEGATE_ALERTS_TOKEN", signing.ALERTS_TOKEN)
    repeat = json.dumps(body).encode()
    with serving(create_app(Settings(), world.store)) as base, client(base) as http:
        kept = http.post("/webhooks/alerts", content=repeat, headers=signing.alerts())
        assert kept.status_code == 202  # today's repeat is kept ...
        again = http.post("/webhooks/alerts", content=repeat, headers=signing.alerts())
        assert again.json()["status"] == "duplicate"  # ... once: the inbox does not grow

    facts = source(world, default_policies).collect(churn)["monitoring"]
    [signal] = facts["signals"]
    assert (signal["kind"], signal["received_at"]) == ("heartbeat", iso(started)[:-1] + "+00:00")
    kind = KINDS["monitoring_signal"]
    evidence = Evidence.model_validate({"project": {"key": "churn-model"}, "monitoring": facts})
    finding = kind.run(kind.params(), evidence)
    assert (
        finding.ok and finding.found == f"1 received, first heartbeat at {started:%Y-%m-%d %H:%M}Z"
    )


def test_heartbeat_repeats_leave_the_evidence_and_its_digest_alone(world, default_policies):
    churn = default_policies.projects["churn-model"]
    now = datetime.now(UTC)
    body = watchdog(iso(now - timedelta(days=40)))
    for days_ago in (29, 15, 1):  # a repeat kept on each of these days
        at = now - timedelta(days=days_ago)
        add(world, inbound.delivery_id(body, HEARTBEATS, at), "alert.firing", body, at=at)

    def seen(window_days: int) -> dict:
        window = timedelta(days=window_days)
        return MonitoringSource(world.store, lambda: default_policies, HEARTBEATS, window).collect(
            churn
        )

    def digest(facts: dict) -> str:
        evidence = Evidence.model_validate({"project": {"key": "churn-model"}, **facts})
        return gate_digest(evidence, [("monitoring", "signals")])

    # a smaller window is what a later day sees: the oldest repeats have left it
    assert seen(30) == seen(20) == seen(2)
    add(world, inbound.delivery_id(body, HEARTBEATS, now), "alert.firing", body, at=now)
    assert seen(30) == seen(2)
    assert digest(seen(30)) == digest(seen(2))  # approvals bound to it stay valid


def test_inbox_rows_since_a_time(world):
    now = datetime.now(UTC)
    add(world, "old", "alert.firing", {}, at=now - timedelta(days=2))
    add(world, "new", "alert.firing", {}, at=now)
    since = world.store.inbox_events(source="monitoring", since=now - timedelta(days=1))
    assert [r.delivery_id for r in since] == ["new"]


# -- end to end: through the receiver to the decision ---------------------------------------


def grafana(status: str, labels: dict, starts: str = "2026-11-20T10:00:00Z") -> dict:
    """A notification in Grafana's webhook format (Alertmanager's, plus Grafana's fields)."""
    alert_labels = {"alertname": "Prediction drift", "category": "drift", **labels}
    return {
        "receiver": "phasegate",
        "status": status,
        "orgId": 1,
        "alerts": [
            {
                "status": status,
                "labels": alert_labels,
                "annotations": {"summary": "PSI of the score distribution above 0.2"},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-20T11:00:00Z",
                "generatorURL": "https://grafana.example/alerting/grafana/d1rdpdv7k/view",
                "fingerprint": "bc97ff14869b13e3",
                "silenceURL": "https://grafana.example/alerting/silence/new?matchers=alertname%3DPrediction+drift",
                "dashboardURL": "https://grafana.example/d/churn",
                "panelURL": "https://grafana.example/d/churn?viewPanel=2",
                "values": {"B": 0.27, "C": 1},
                "valueString": "[ var='B' labels={} value=0.27 ]",
            }
        ],
        "groupLabels": {"alertname": "Prediction drift"},
        "commonLabels": alert_labels,
        "commonAnnotations": {},
        "externalURL": "https://grafana.example/",
        "version": "1",
        "groupKey": '{}/{category="drift"}:{alertname="Prediction drift"}',
        "truncatedAlerts": 0,
        "title": f"[{status.upper()}:1] Prediction drift (churn-model drift)",
        "state": "alerting" if status == "firing" else "ok",
        "message": "**Firing**\n\nValue: B=0.27\nLabels:\n - alertname = Prediction drift\n",
    }


@pytest.mark.usefixtures("prefect_harness")
def test_a_heartbeat_through_the_receiver_is_monitoring_s_first_signal(world, monkeypatch):
    from flows.process_inbox import process_inbox

    world.use_evidence("monitoring-attached.passed.json")
    facts = world.checkout / ".phasegate" / "evidence.json"
    facts.write_text(
        json.dumps({k: v for k, v in json.loads(facts.read_text()).items() if k != "monitoring"})
    )
    world.move_to("deployment")
    world.event("nudge")
    process_inbox()
    first = world.store.last_evaluations("churn-model")["monitoring-attached"].result
    outcomes = {c["id"]: c["outcome"] for c in first["checks"]}
    assert outcomes == {
        "monitoring-config": "passed",
        "alerts-routed": "passed",
        "first-signal": "failed",
    }

    monkeypatch.setenv("PHASEGATE_ALERTS_TOKEN", signing.ALERTS_TOKEN)
    heartbeat = signing.alertmanager(
        labels={"alertname": "Watchdog", "model": "churn-classifier", "category": "meta"}
    )
    with serving(create_app(Settings(), world.store)) as base, client(base) as http:
        body = json.dumps(heartbeat).encode()
        assert (
            http.post("/webhooks/alerts", content=body, headers=signing.alerts()).status_code == 202
        )
    process_inbox()
    latest = world.store.last_evaluations("churn-model")["monitoring-attached"].result
    [signal] = [c for c in latest["checks"] if c["id"] == "first-signal"]
    assert signal["outcome"] == "passed" and signal["found"].startswith(
        "1 received, first heartbeat at"
    )
    assert latest["status"] == "awaiting_approval"


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("sender", ["alertmanager", "grafana"])
def test_a_drift_alert_regresses_once_is_recorded_resolved_and_flapping_is_held_down(
    sender, world, monkeypatch, default_policies
):
    from flows.process_inbox import process_inbox

    world.use_evidence("monitoring-attached.passed.json")
    world.move_to("operation")
    monkeypatch.setenv("PHASEGATE_ALERTS_TOKEN", signing.ALERTS_TOKEN)
    labels = {"project": "churn-model"}

    def notification(status: str, starts: str = "2026-11-20T10:00:00Z") -> bytes:
        if sender == "grafana":
            return json.dumps(grafana(status, labels, starts)).encode()
        return json.dumps(signing.alertmanager(status, labels, starts)).encode()

    with serving(create_app(Settings(), world.store)) as base, client(base) as http:

        def post(body: bytes) -> None:
            assert (
                http.post("/webhooks/alerts", content=body, headers=signing.alerts()).status_code
                == 202
            )
            process_inbox()

        post(notification("firing"))
        assert world.store.project("churn-model").phase == "model-development"
        post(notification("resolved"))
        resolved = source(world, default_policies).collect(default_policies.projects["churn-model"])
        assert [a["status"] for a in resolved["monitoring"]["alerts"]] == ["resolved"]

        world.move_to("operation")  # fixed and redeployed
        post(notification("firing", starts="2026-11-20T12:00:00Z"))  # it flaps
        post(notification("resolved", starts="2026-11-20T12:00:00Z"))
        assert world.store.project("churn-model").phase == "operation"  # within the 6 h hold-down

    rows = world.store.inbox_events(source="monitoring")
    assert [(r.kind, r.status) for r in rows] == [
        ("alert.firing", "done"),
        ("alert.resolved", "done"),
        ("alert.firing", "done"),
        ("alert.resolved", "done"),
    ]
    regressions = [t for t in world.store.transitions("churn-model") if t.kind == "regress"]
    assert [(t.from_phase, t.to_phase, t.rule) for t in regressions] == [
        ("operation", "model-development", "drift-or-quality-alert")
    ]
    told = [
        r.payload
        for r in world.store.outbox_rows("pending")
        if r.payload.get("status") == "regressed"
    ]
    assert len(told) == 1 and told[0]["summary"].startswith("regression drift-or-quality-alert")


FRAUD_PROJECT = """\
kind: Project
key: fraud-model
title: Card fraud detector
github: {repo: acme/fraud-model, tracking_issue: 1}
mlflow: {models: [fraud-detector]}
people: {ml-engineer: [dave], business-owner: [bob]}
"""


def grouped(sender: str) -> dict:
    """One notification grouping drift alerts of two projects, some firing, some resolved
    (Alertmanager ``group_by: [category]``; Grafana's contact point groups the same way)."""
    base = "2026-11-20T10:00:00Z"

    def alert(status: str, name: str, labels: dict, fingerprint: str) -> dict:
        labels = {"alertname": name, "category": "drift", "severity": "warning", **labels}
        one = {
            "status": status,
            "labels": labels,
            "annotations": {"summary": f"{name} on {labels.get('feature')}"},
            "startsAt": base,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-20T11:00:00Z",
            "generatorURL": f"http://prometheus.example:9090/graph?g0.expr={name}",
            "fingerprint": fingerprint,
        }
        if sender == "grafana":
            one["generatorURL"] = "https://grafana.example/alerting/grafana/d1rdpdv7k/view"
            one |= {
                "silenceURL": f"https://grafana.example/alerting/silence/new?matchers=alertname%3D{name}",
                "dashboardURL": "https://grafana.example/d/drift",
                "panelURL": "https://grafana.example/d/drift?viewPanel=2",
                "values": {"B": 0.27, "C": 1 if status == "firing" else 0},
                "valueString": "[ var='B' labels={} value=0.27 ]",
            }
        return one

    alerts = [
        alert("firing", "FeatureDrift", {"project": "churn-model", "feature": "tenure"}, "a1"),
        alert("resolved", "FeatureDrift", {"project": "churn-model", "feature": "charges"}, "a2"),
        alert("resolved", "PredictionDrift", {"model": "fraud-detector", "feature": "score"}, "b1"),
    ]
    body = {
        "version": "4",
        "groupKey": '{}/{category=~"drift|quality"}:{category="drift"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "phasegate",
        "groupLabels": {"category": "drift"},
        "commonLabels": {"category": "drift", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }
    if sender == "grafana":
        body |= {
            "version": "1",
            "externalURL": "https://grafana.example/",
            "orgId": 1,
            "title": "[FIRING:1, RESOLVED:2]  (drift warning)",
            "state": "alerting",
            "message": "**Firing**\n\nValue: B=0.27\nLabels:\n - alertname = FeatureDrift\n",
        }
    return body


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("sender", ["alertmanager", "grafana"])
def test_a_grouped_notification_is_judged_alert_by_alert_for_each_project(
    sender, world, monkeypatch
):
    from flows.process_inbox import process_inbox

    (world.root / "policies" / "projects" / "fraud-model.yaml").write_text(FRAUD_PROJECT)
    world.use_evidence("monitoring-attached.passed.json")
    for key in ("churn-model", "fraud-model"):
        world.move_to("operation", key)
    monkeypatch.setenv("PHASEGATE_ALERTS_TOKEN", signing.ALERTS_TOKEN)
    body = json.dumps(grouped(sender)).encode()
    with serving(create_app(Settings(), world.store)) as base, client(base) as http:
        assert (
            http.post("/webhooks/alerts", content=body, headers=signing.alerts()).status_code == 202
        )
    process_inbox()

    assert world.store.project("churn-model").phase == "model-development"  # its drift fires
    assert world.store.project("fraud-model").phase == "operation"  # its alert is resolved
    [row] = world.store.inbox_events(source="monitoring")
    assert row.status == "done"
    policies = ActivePolicies(world.root / "policies")
    policies.reload()
    read = MonitoringSource(world.store, lambda: policies.current, HEARTBEATS)
    churn = read.collect(policies.current.projects["churn-model"])["monitoring"]
    assert sorted((a["labels"]["feature"], a["status"]) for a in churn["alerts"]) == [
        ("charges", "resolved"),
        ("tenure", "firing"),
    ]
    fraud = read.collect(policies.current.projects["fraud-model"])["monitoring"]
    assert [(a["name"], a["status"]) for a in fraud["alerts"]] == [("PredictionDrift", "resolved")]
    regressions = [
        (t.project, t.rule)
        for key in ("churn-model", "fraud-model")
        for t in world.store.transitions(key)
        if t.kind == "regress"
    ]
    assert regressions == [("churn-model", "drift-or-quality-alert")]
