"""Monitoring: the config file and its schema, Evidently reports, heartbeats, and alerts from
Alertmanager and Grafana through the receiver to signals, alert records and regressions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from gates.checks import KINDS
from gates.evidence import Evidence
from gates.monitoring import REQUIRED, validate
from integrations.monitoring.evidence import MonitoringSource
from integrations.monitoring.reports import summary
from integrations.receiver import create_app
from phasegate.cli import app as cli
from phasegate.settings import Settings
from tests import signing
from tests.paths import ROOT
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
            "monitoring/config.yaml monitors 'other-model'",
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
        with_metadata = json.dumps({**REPORT_LEGACY, "metadata": {"project": "churn-model"}})
        assert http.post(url, content=with_metadata, headers=signing.alerts()).status_code == 202
        other = http.post(f"{url}?model=m", content=b'{"alerts": []}', headers=signing.alerts())
        assert other.status_code == 400 and "not an Evidently report" in other.json()["error"]
    rows = world.store.inbox_events(source="monitoring")
    assert [(r.kind, r.payload["subject"]) for r in rows] == [
        ("report", {"model": "churn-classifier"}),
        ("report", {"project": "churn-model"}),
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


def move_to(world, phase: str) -> None:
    now = datetime.now(UTC)
    world.store.ensure_project("churn-model", "framing", now)
    world.store.transition(
        project="churn-model",
        to_phase=phase,
        kind="advance",
        reason="test setup",
        evaluation_id=None,
        at=now,
    )


@pytest.mark.usefixtures("prefect_harness")
def test_a_heartbeat_through_the_receiver_is_monitoring_s_first_signal(world, monkeypatch):
    from flows.process_inbox import process_inbox

    world.use_evidence("monitoring-attached.passed.json")
    facts = world.checkout / ".phasegate" / "evidence.json"
    facts.write_text(
        json.dumps({k: v for k, v in json.loads(facts.read_text()).items() if k != "monitoring"})
    )
    move_to(world, "deployment")
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
    move_to(world, "operation")
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

        move_to(world, "operation")  # fixed and redeployed
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
        r.payload for r in world.store.pending_outbox() if r.payload.get("status") == "regressed"
    ]
    assert len(told) == 1 and told[0]["summary"].startswith("regression drift-or-quality-alert")
