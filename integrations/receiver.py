"""The HTTP receiver: verify, store in the inbox, answer at once, then nudge Prefect.

Order matters. Verification comes before anything is parsed or stored, so a forged request
costs nothing and leaves nothing behind. The inbox write comes before the answer, so an
accepted event survives any crash after it. The Prefect event comes last and is only a nudge:
if it is lost, the scheduled ``reconcile`` flow finds the pending event anyway.

One exception to "stored before answered": Slack shows the person an error unless it gets its
answer within 3 s, and a SQLite writer may wait far longer for another process's lock. So a
Slack interaction is answered after at most 2.5 s and its write finishes in the background;
if that write fails after all, the person is told through the interaction's response_url to
click again. A signed body that cannot be read is a 400 with the reason (resending it cannot
help); only a store failure is a 503, which tells the sender to retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from gates.store import InboxEvent, Store
from integrations import signatures, status, strict_json
from integrations.github import inbound as github_inbound
from integrations.inbox_writer import InboxWriter
from integrations.mlflow import inbound as mlflow_inbound
from integrations.monitoring import inbound as alerts_inbound
from integrations.monitoring import reports as reports_inbound
from integrations.slack import inbound as slack_inbound
from integrations.slack.client import slack_client
from integrations.slack.dialog import ReasonDialog
from integrations.slack.unrecorded import Unrecorded
from phasegate.settings import Settings

log = logging.getLogger("phasegate.receiver")

INBOX_EVENT = "phasegate.inbox.received"
Notify = Callable[[int, str, str], None]
SLACK_ANSWER_WITHIN_S = 2.5
"""Slack shows the person an error unless it is answered within 3 s of the click."""
LATE_WRITES_GRACE_S = 10.0
"""On shutdown, how long writes answered before they finished may still take."""


class Rejected(Exception):
    """A request refused with a status and a reason the sender (and the log) can read."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Sender:
    """How one kind of sender proves itself and names its deliveries."""

    name: str
    setting: str
    secret: str | None
    verify: Callable[[str, bytes, Mapping[str, str]], bool]
    parse: Callable[[bytes], dict[str, Any]]
    identify: Callable[[dict[str, Any], Mapping[str, str]], tuple[str, str]]
    answer: Callable[[int | None, bool], Response]
    """The answer for (inbox id, newly stored); the id is None when answered before stored."""
    answer_within_s: float | None = None
    """Answer by then even if the inbox write is still waiting (None: wait for it)."""
    lost: Callable[[dict[str, Any]], None] | None = None
    """Called with the payload when a write answered early fails after all."""


def _json(body: bytes) -> dict[str, Any]:
    try:
        return strict_json.loads(body)
    except strict_json.Malformed as exc:
        raise Rejected(400, f"malformed JSON: {exc}") from None


def _unreadable(sender: str, exc: Exception) -> Rejected:
    """A signed payload whose shape the sender's reader does not understand: 400, never the
    "retry later" 503, because sending the same body again can never succeed."""
    detail = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    return Rejected(400, f"malformed {sender} payload: {detail}")


def _slack_form(body: bytes) -> dict[str, Any]:
    try:
        return slack_inbound.parse(body)
    except slack_inbound.MalformedInteraction as exc:
        raise Rejected(400, f"malformed Slack interaction: {exc}") from None


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise Rejected(400, f"missing header {name}")
    return value


def _accepted(inbox_id: int | None, created: bool) -> Response:
    status = "accepted" if created else "duplicate"
    return JSONResponse(
        {"status": status, "inbox_id": inbox_id}, status_code=202 if created else 200
    )


def _slack_ack(inbox_id: int | None, created: bool) -> Response:
    return Response(status_code=200)  # an empty 200 is what Slack expects, within 3 s


def senders(settings: Settings) -> dict[str, Sender]:
    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    return {
        "github": Sender(
            "github",
            "PHASEGATE_GITHUB_WEBHOOK_SECRET",
            secret(settings.github_webhook_secret),
            signatures.github,
            _json,
            lambda body, h: (
                _required(h, "x-github-delivery"),
                github_inbound.kind(_required(h, "x-github-event"), body),
            ),
            _accepted,
        ),
        "mlflow": Sender(
            "mlflow",
            "PHASEGATE_MLFLOW_WEBHOOK_SECRET",
            secret(settings.mlflow_webhook_secret),
            signatures.mlflow,
            _json,
            lambda body, h: (_required(h, "x-mlflow-delivery-id"), mlflow_inbound.kind(body)),
            _accepted,
        ),
        "monitoring": Sender(
            "monitoring",
            "PHASEGATE_ALERTS_TOKEN",
            secret(settings.alerts_token),
            lambda token, _body, h: signatures.bearer(token, h),
            _json,
            lambda body, _h: (
                alerts_inbound.delivery_id(body, settings.heartbeat_alerts),
                alerts_inbound.kind(body),
            ),
            _accepted,
        ),
        "reports": Sender(  # its parse is made per request: the query names the project
            "monitoring",
            "PHASEGATE_ALERTS_TOKEN",
            secret(settings.alerts_token),
            lambda token, _body, h: signatures.bearer(token, h),
            _json,
            lambda body, _h: (reports_inbound.delivery_id(body), reports_inbound.KIND),
            _accepted,
        ),
        "slack": Sender(
            "slack",
            "PHASEGATE_SLACK_SIGNING_SECRET",
            secret(settings.slack_signing_secret),
            signatures.slack,
            _slack_form,
            lambda body, _h: (
                slack_inbound.delivery_id(body),
                f"slack.{body.get('type', 'unknown')}",
            ),
            _slack_ack,
            SLACK_ANSWER_WITHIN_S,
            Unrecorded(settings.slack_response_url_base),
        ),
    }


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"body of {declared} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _admit(sender: Sender, request: Request, limit: int) -> tuple[dict[str, Any], InboxEvent]:
    """Verify, then read: the payload and the event to store, or :class:`Rejected`."""
    if not sender.secret:
        peer = request.client.host if request.client else "?"
        log.warning(
            "refused a %s webhook from %s: %s is not set", sender.name, peer, sender.setting
        )
        raise Rejected(503, f"{sender.name} webhooks are not configured here: set {sender.setting}")
    body = await _read(request, limit)
    if not sender.verify(sender.secret, body, request.headers):
        raise Rejected(401, f"{sender.name} signature missing or invalid")
    try:
        payload = sender.parse(body)
        stored = strict_json.storable(payload)
        delivery, kind = sender.identify(payload, request.headers)
    except Rejected:
        raise
    except strict_json.Malformed as exc:
        raise Rejected(400, f"malformed JSON: {exc}") from None
    except Exception as exc:  # the sender's reader choked on a shape it did not expect
        raise _unreadable(sender.name, exc) from None
    return payload, InboxEvent(sender.name, delivery, kind, stored, datetime.now(UTC))


def create_app(settings: Settings, store: Store, notify: Notify | None = None) -> FastAPI:
    """The receiver as an ASGI app; ``notify`` is called for every newly stored event."""
    late: set[asyncio.Task[None]] = set()
    """Writes answered before they finished (Slack's deadline): referenced until they end."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if late:  # let them end, so that their outcome is logged and told
            log.info("waiting for %d inbox write(s) answered before they finished", len(late))
            await asyncio.wait(late, timeout=LATE_WRITES_GRACE_S)

    app = FastAPI(title="phasegate receiver", docs_url=None, redoc_url=None, lifespan=lifespan)
    inbox = InboxWriter(store)
    by_name = senders(settings)
    slack_api = slack_client(settings)
    dialog = ReasonDialog(slack_api) if slack_api is not None else None

    def kept(sender: Sender, kind: str, delivery: str, row_id: int, created: bool) -> None:
        if not created:
            log.info("inbox #%s: %s delivery %s again, ignored", row_id, sender.name, delivery)
            return
        log.info("inbox #%s: %s %s (delivery %s)", row_id, sender.name, kind, delivery)
        if notify is not None:
            try:
                notify(row_id, sender.name, kind)
            except Exception:  # the inbox is the truth; reconcile picks the event up
                log.warning("could not emit the Prefect event for inbox #%s", row_id, exc_info=True)

    async def finish_late(
        sender: Sender, kind: str, delivery: str, payload: dict[str, Any], write: asyncio.Future
    ) -> None:
        started = time.monotonic()
        try:
            row_id, created = await write
        except Exception:
            log.exception(
                "the %s event %s was answered but could not be stored: it is lost",
                sender.name,
                delivery,
            )
            if sender.lost is not None:
                await run_in_threadpool(sender.lost, payload)
            return
        log.info(
            "inbox #%s: stored %.1f s after %s was answered",
            row_id,
            time.monotonic() - started,
            delivery,
        )
        kept(sender, kind, delivery, row_id, created)

    async def receive(sender: Sender, request: Request) -> Response:
        try:
            payload, event = await _admit(sender, request, settings.max_body_bytes)
        except Rejected as exc:
            if exc.status != 503:
                peer = request.client.host if request.client else "?"
                log.warning("rejected a %s request from %s: %s", sender.name, peer, exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        delivery, kind = event.delivery_id, event.kind
        write = inbox.add(event)
        done, _ = await asyncio.wait({write}, timeout=sender.answer_within_s)
        if not done:  # the database is busy: answer in time, finish the write in the background
            log.warning(
                "the %s event %s is not stored after %.1f s: answered, still storing",
                sender.name,
                delivery,
                sender.answer_within_s,
            )
            task = asyncio.create_task(finish_late(sender, kind, delivery, payload, write))
            late.add(task)
            task.add_done_callback(late.discard)
            return sender.answer(None, True)
        try:
            row_id, created = write.result()
        except Exception:  # only the store is left to fail: the sender's retry may succeed
            log.exception("could not store a %s event; the sender should retry", sender.name)
            return JSONResponse(
                {"error": "phasegate could not store the event; retry later"}, status_code=503
            )
        kept(sender, kind, delivery, row_id, created)
        return sender.answer(row_id, created)

    async def github(request: Request) -> Response:
        return await receive(by_name["github"], request)

    async def mlflow(request: Request) -> Response:
        return await receive(by_name["mlflow"], request)

    async def alerts(request: Request) -> Response:
        return await receive(by_name["monitoring"], request)

    async def reports(request: Request) -> Response:
        """An Evidently report; ``?model=`` or ``?project=`` says whose (or its metadata)."""
        query = dict(request.query_params)

        def parse(body: bytes) -> dict[str, Any]:
            try:
                return reports_inbound.payload(_json(body), query)
            except reports_inbound.NotAReport as exc:
                raise Rejected(400, str(exc)) from None

        return await receive(replace(by_name["reports"], parse=parse), request)

    async def slack(request: Request) -> Response:
        """A Reject click also opens its reason dialog, after the answer: Slack's trigger_id
        lasts 3 s, too short for the flow path (see integrations/slack/dialog.py)."""
        seen: list[dict[str, Any]] = []

        def parse(body: bytes) -> dict[str, Any]:
            seen.append(_slack_form(body))
            return seen[-1]

        response = await receive(replace(by_name["slack"], parse=parse), request)
        if dialog is not None and seen and response.status_code == 200 and dialog.wanted(seen[0]):
            response.background = BackgroundTask(dialog, seen[0])
        return response

    async def healthz() -> Response:
        try:
            counts = await run_in_threadpool(store.inbox_counts)
        except Exception as exc:
            return JSONResponse(
                {"status": "unhealthy", "error": type(exc).__name__}, status_code=503
            )
        return JSONResponse({"status": "ok", "inbox": counts})

    app.add_api_route("/webhooks/github", github, methods=["POST"])
    app.add_api_route("/webhooks/mlflow", mlflow, methods=["POST"])
    app.add_api_route("/webhooks/alerts", alerts, methods=["POST"])
    app.add_api_route("/webhooks/monitoring/reports", reports, methods=["POST"])
    app.add_api_route("/slack/interactions", slack, methods=["POST"])
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.include_router(status.router(store))
    return app


def app_from_environment() -> FastAPI:
    """The receiver alone (``uvicorn --factory``, ``phasegate receive``): for replicas behind a
    load balancer, with the flows running on Prefect workers elsewhere."""
    import os

    from integrations.nudge import Nudge

    settings = Settings()
    store = Store(settings.database_url)
    store.migrate()
    if not os.environ.get("PREFECT_API_URL"):
        log.warning("PREFECT_API_URL is not set: stored events wait for the next reconcile run")
    return create_app(settings, store, Nudge() if os.environ.get("PREFECT_API_URL") else None)
