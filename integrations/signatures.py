"""Is this request really from the sender it claims? One function per sender's scheme.

Each takes the raw body exactly as received: any re-encoding would change the bytes the
sender signed. Comparisons are constant-time. A check never raises on garbage input: a
malformed header is simply an invalid signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from slack_sdk.signature import Clock, SignatureVerifier

REPLAY_WINDOW_S = 300  # Slack's documented 5 minutes; used for MLflow's timestamp too.


def github(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``."""
    given = headers.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.encode(), expected.encode())


def mlflow(
    secret: str, body: bytes, headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> bool:
    """``X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "id.timestamp.body")>``, fresh."""
    delivery = headers.get("x-mlflow-delivery-id", "")
    stamp = headers.get("x-mlflow-timestamp", "")
    given = headers.get("x-mlflow-signature", "")
    if not delivery or not stamp.isdigit() or abs(now() - int(stamp)) > REPLAY_WINDOW_S:
        return False
    content = f"{delivery}.{stamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    return hmac.compare_digest(given.encode(), expected.encode())


def slack(secret: str, body: bytes, headers: Mapping[str, str], clock: Clock | None = None) -> bool:
    """Slack's v0 signing with its 5-minute replay window (slack_sdk does the work)."""
    stamp = headers.get("x-slack-request-timestamp", "")
    if not stamp.isdigit():
        return False
    verifier = SignatureVerifier(secret, clock or Clock())
    return verifier.is_valid(body, stamp, headers.get("x-slack-signature"))


def bearer(token: str, headers: Mapping[str, str]) -> bool:
    """``Authorization: Bearer <token>`` as Alertmanager and Grafana contact points send it."""
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
