"""Registering phasegate's webhook on an MLflow server (MLflow >= 3.3), idempotently.

MLflow's webhook API: ``POST/GET /api/2.0/mlflow/webhooks``, ``PATCH
/api/2.0/mlflow/webhooks/{id}``, ``POST …/{id}/test``; events are ``{entity, action}`` pairs
spelled as the proto enum names (``MODEL_VERSION``/``CREATED``). A webhook already pointing at
the same receiver URL is updated (events, secret, status) rather than duplicated, so running
``phasegate mlflow connect`` again — say after rotating the secret — is safe.

Servers without webhooks (a file store, MLflow before 3.3) need nothing: the scheduled
``reconcile`` flow re-evaluates every project, reading the registry afresh, so new versions
and aliases are seen within its interval instead of within seconds. :func:`connect` tells
such a server by its answer to ``GET /webhooks``: MLflow before 3.3 has no such route (404);
a file store has it but fails on it (500 with Flask's HTML page, not an MLflow error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from integrations.mlflow.client import MlflowClient, MlflowError, MlflowUnavailable

WEBHOOK_NAME = "phasegate"
RECEIVER_PATH = "/webhooks/mlflow"
EVENTS: tuple[tuple[str, str], ...] = (
    ("REGISTERED_MODEL", "CREATED"),
    ("MODEL_VERSION", "CREATED"),
    ("MODEL_VERSION_TAG", "SET"),
    ("MODEL_VERSION_ALIAS", "CREATED"),
    ("MODEL_VERSION_ALIAS", "DELETED"),
)
"""What changes a model-registry gate's evidence."""


POLLED_INSTEAD = "phasegate's reconcile flow polls the registry every 5 minutes instead"


class NoWebhooks(MlflowError):
    """The server has no webhooks to register (a file store, or MLflow before 3.3)."""


@dataclass(frozen=True)
class Connected:
    webhook: dict[str, Any]
    action: Literal["created", "updated"]


def receiver_url(base: str) -> str:
    """The receiver's MLflow endpoint, from its base URL (or the endpoint itself)."""
    base = base.rstrip("/")
    return base if base.endswith(RECEIVER_PATH) else base + RECEIVER_PATH


def connect(client: MlflowClient, receiver: str, secret: str) -> Connected:
    """Make MLflow send registry events to ``receiver``, signed with ``secret``."""
    url = receiver_url(receiver)
    body = {
        "name": WEBHOOK_NAME,
        "url": url,
        "events": [{"entity": e, "action": a} for e, a in EVENTS],
        "description": "phasegate: re-evaluate the gates of the projects that use this model",
        "secret": secret,
        "status": "ACTIVE",
    }
    existing = next((w for w in _webhooks(client) if w.get("url") == url), None)
    if existing is None:
        return Connected(client.create_webhook(body), "created")
    return Connected(client.update_webhook(existing["webhook_id"], body), "updated")


def _webhooks(client: MlflowClient) -> list[dict[str, Any]]:
    """The server's webhooks, or :class:`NoWebhooks` when it has none to offer."""
    try:
        return client.webhooks()
    except MlflowUnavailable as exc:
        if exc.status == 500 and exc.code == "500":  # Flask's page, no MLflow error code
            raise NoWebhooks(
                f"MLflow at {client.base} fails on its webhooks API (HTTP 500 without an MLflow "
                "error), as a server with a file store does: webhooks need MLflow ≥ 3.3 with a "
                f"database backend; {POLLED_INSTEAD}"
            ) from None
        raise
    except MlflowError as exc:
        if exc.status == 404:
            raise NoWebhooks(
                f"this MLflow server ({client.base}) has no webhooks API (needs MLflow ≥ 3.3 "
                f"with a database backend); {POLLED_INSTEAD}"
            ) from None
        raise
