"""Sign requests the way each sender does, for tests that play GitHub, Slack, MLflow, Alertmanager."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlencode

GITHUB_SECRET = "gh-test-secret"
SLACK_SECRET = "slack-test-secret"
MLFLOW_SECRET = "mlflow-test-secret"
ALERTS_TOKEN = "alerts-test-token"


def github(
    body: bytes, event: str, delivery: str | None = None, secret: str = GITHUB_SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def mlflow(
    body: bytes, delivery: str | None = None, stamp: int | None = None, secret: str = MLFLOW_SECRET
) -> dict[str, str]:
    delivery = delivery or str(uuid.uuid4())
    stamp_s = str(stamp if stamp is not None else int(time.time()))
    digest = hmac.new(
        secret.encode(), f"{delivery}.{stamp_s}.".encode() + body, hashlib.sha256
    ).digest()
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": stamp_s,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }


def slack_body(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def slack(body: bytes, stamp: int | None = None, secret: str = SLACK_SECRET) -> dict[str, str]:
    stamp_s = str(stamp if stamp is not None else int(time.time()))
    signature = hmac.new(
        secret.encode(), f"v0:{stamp_s}:".encode() + body, hashlib.sha256
    ).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp_s,
        "X-Slack-Signature": f"v0={signature}",
    }


def alerts(token: str = ALERTS_TOKEN) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def alertmanager(
    status: str = "firing", labels: dict | None = None, starts: str = "2026-11-20T10:00:00Z"
) -> dict:
    """A notification in Alertmanager's webhook format (version 4)."""
    alert_labels = {
        "alertname": "FeatureDrift",
        "severity": "critical",
        "category": "drift",
        **(labels or {}),
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="FeatureDrift"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "phasegate",
        "groupLabels": {"alertname": "FeatureDrift"},
        "commonLabels": alert_labels,
        "commonAnnotations": {"summary": "PSI of tenure_months above 0.2"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": alert_labels,
                "annotations": {"summary": "PSI of tenure_months above 0.2"},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-20T11:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=psi",
                "fingerprint": "c0ffee0123456789",
            }
        ],
    }
