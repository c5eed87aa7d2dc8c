"""A small client for MLflow's REST API, over httpx.

phasegate reads the model registry and runs and manages its webhook; the ``mlflow`` package
is not needed for that (and its dependencies would fight Prefect's pins). It is configured
like every MLflow client, with MLflow's own variables:

- ``MLFLOW_TRACKING_URI`` — the http(s) URL of the tracking server (MLflow's local values,
  ``file:./mlruns`` or ``sqlite:///mlflow.db``, name a store only the ``mlflow`` package
  reads: :class:`MlflowConfigError` says to point it at ``mlflow server`` instead);
- ``MLFLOW_TRACKING_TOKEN`` (a bearer token), or ``MLFLOW_TRACKING_USERNAME`` and
  ``MLFLOW_TRACKING_PASSWORD`` (basic auth);
- ``MLFLOW_TRACKING_INSECURE_TLS`` / ``MLFLOW_TRACKING_SERVER_CERT_PATH`` for TLS;
- ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, with shorter
  defaults than MLflow's own (120 s, 7 retries): a gate should say "MLflow is down" within
  seconds, and the scheduled reconcile evaluates again anyway.

Connection failures, timeouts and 5xx answers are retried with backoff; then
:class:`MlflowUnavailable` says what was tried and what happened. Messages name the server
and the endpoint, never a credential.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

API = "/api/2.0/mlflow"


class MlflowError(RuntimeError):
    """MLflow answered with an error; ``code`` is its ``error_code`` (or the HTTP status)."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class MlflowUnavailable(MlflowError):
    """MLflow could not be reached, or kept failing, after the retries; ``status`` is the last
    HTTP status when it answered (0 when it never did)."""


class MlflowConfigError(ValueError):
    """The MLflow variables cannot work; the message says which and how to fix it."""


def _safe(url: str) -> str:
    """The URL without user:password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _not_a_server(tracking_uri: str) -> MlflowConfigError:
    """``file:``, ``sqlite:``, ``postgresql:``… are stores the ``mlflow`` package opens
    itself; phasegate only speaks the server's REST API. The URI is shown without any
    password it may hold (a database URI often does)."""
    shown = tracking_uri
    if "@" in shown:
        scheme, _, rest = shown.partition("://")
        shown = f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return MlflowConfigError(
        f"MLFLOW_TRACKING_URI={shown} is not an MLflow server URL; phasegate reads the "
        "registry over REST: point it at `mlflow server` (e.g. http://127.0.0.1:5000)"
    )


class MlflowClient:
    """One tracking server. ``calls`` counts the REST requests made (retries included)."""

    def __init__(
        self,
        tracking_uri: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        verify: bool | str = True,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if urlsplit(tracking_uri).scheme not in ("http", "https"):
            raise _not_a_server(tracking_uri)
        parts = urlsplit(tracking_uri)
        if parts.username and not (token or username):  # http://user:password@host
            username, password = unquote(parts.username), unquote(parts.password or "")
        self.base = _safe(tracking_uri)  # credentials travel in headers, never in URLs
        self.retries = retries
        self.backoff_s = backoff_s
        self.calls = 0
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        auth = httpx.BasicAuth(username, password or "") if username and not token else None
        self._http = httpx.Client(
            base_url=self.base,
            headers=headers,
            auth=auth,
            verify=verify,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            transport=transport,
        )

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] = os.environ, transport: httpx.BaseTransport | None = None
    ) -> MlflowClient:
        uri = environ.get("MLFLOW_TRACKING_URI", "")
        if not uri:
            raise MlflowConfigError("MLFLOW_TRACKING_URI is not set")
        cert = environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
        insecure = environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true")

        def number(name: str, default: float, what: str, valid: Callable[[float], bool]) -> float:
            value = environ.get(name, "").strip()
            try:
                parsed = float(value) if value else default
            except ValueError:
                parsed = float("nan")
            if not valid(parsed):
                raise MlflowConfigError(f"{name} must be {what}, found {value!r}")
            return parsed

        return cls(
            uri,
            token=environ.get("MLFLOW_TRACKING_TOKEN") or None,
            username=environ.get("MLFLOW_TRACKING_USERNAME") or None,
            password=environ.get("MLFLOW_TRACKING_PASSWORD") or None,
            verify=False if insecure else (cert or True),
            timeout_s=number(
                "MLFLOW_HTTP_REQUEST_TIMEOUT", 10.0, "a number of seconds above 0", lambda s: s > 0
            ),
            retries=int(
                number(
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                    2,
                    "a whole number of retries, 0 or more",
                    lambda n: n >= 0 and n == int(n),
                )
            ),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # -- transport --------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, retried on connection errors, timeouts and 5xx; other answers returned."""
        attempt = 0
        while True:
            self.calls += 1
            status, code = 0, ""
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code < 500:
                    return response
                status, code = response.status_code, _error_code(response)
                failure = f"HTTP {status} {_message(response)}"
            if attempt >= self.retries:
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                raise MlflowUnavailable(
                    f"MLflow at {self.base} did not answer {method} {path.split('?')[0]} "
                    f"({tries}): {failure}",
                    code=code or (str(status) if status else ""),
                    status=status,
                )
            time.sleep(self.backoff_s * 2**attempt)
            attempt += 1

    def call(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        """A REST API call (``endpoint`` below ``/api/2.0/mlflow``); its JSON answer."""
        path = f"{API}/{endpoint.lstrip('/')}"
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise self._error(method, path, response)
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise MlflowError(
                f"MLflow at {self.base} answered {method} {path} with something other "
                "than JSON: is MLFLOW_TRACKING_URI the tracking server's address?"
            ) from None

    def _error(self, method: str, path: str, response: httpx.Response) -> MlflowError:
        code = _error_code(response)
        status = response.status_code
        detail = _message(response)
        if status in (401, 403):
            detail += (
                " — check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD"
                if status == 401
                else " — the credentials lack permission for this"
            )
        return MlflowError(
            f"MLflow at {self.base}: {method} {path} → {status} {code} {detail}".replace("  ", " "),
            code=code or str(status),
            status=status,
        )

    # -- registry and runs ------------------------------------------------------------------

    def registered_model(self, name: str) -> dict[str, Any] | None:
        """The registered model (its aliases and latest versions), or None if it is not."""
        try:
            return self.call("GET", "registered-models/get", params={"name": name})[
                "registered_model"
            ]
        except MlflowError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def model_version(self, name: str, version: str) -> dict[str, Any]:
        return self.call("GET", "model-versions/get", params={"name": name, "version": version})[
            "model_version"
        ]

    def model_version_artifact(self, name: str, version: str, path: str) -> bytes | None:
        """A file of the version's model artifacts (e.g. ``MLmodel``), or None if absent.

        MLflow serves it at ``/model-versions/get-artifact`` (not under ``/api/2.0``), which
        works whatever the version's ``source`` is (``models:/m-…`` in MLflow 3, a run path
        before).
        """
        params = {"name": name, "version": version, "path": path}
        response = self.request("GET", "/model-versions/get-artifact", params=params)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._error("GET", "/model-versions/get-artifact", response)
        return response.content

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run (info and data), or None if it was deleted or never existed."""
        try:
            return self.call("GET", "runs/get", params={"run_id": run_id})["run"]
        except MlflowError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    # -- webhooks (MLflow >= 3.3) -----------------------------------------------------------

    def webhooks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params = {"max_results": 100, **({"page_token": token} if token else {})}
            page = self.call("GET", "webhooks", params=params)
            found += page.get("webhooks", [])
            token = page.get("next_page_token")
            if not token:
                return found

    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "webhooks", json=body)["webhook"]

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("PATCH", f"webhooks/{quote(webhook_id, safe='')}", json=body)["webhook"]

    def test_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Ask MLflow to deliver an example event to the webhook; what the receiver answered."""
        return self.call("POST", f"webhooks/{quote(webhook_id, safe='')}/test", json={})["result"]

    # -- links a person can open ------------------------------------------------------------

    def version_url(self, name: str, version: str) -> str:
        return f"{self.base}/#/models/{quote(name, safe='')}/versions/{version}"

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.base}/#/experiments/{experiment_id}/runs/{run_id}"


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error_code", "")) if isinstance(body, dict) else ""


def _message(response: httpx.Response) -> str:
    """MLflow's own error message, or the start of whatever else the server said."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(body)[:200]
