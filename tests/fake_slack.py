"""A fake Slack Web API for tests: real HTTP, Slack's wire format, every call recorded.

slack-sdk's ``WebClient(base_url=<fake>/api/)`` talks to it as to slack.com: bearer token,
JSON or form bodies, ``{"ok": true, ...}`` answers, ``{"ok": false, "error": ...}`` refusals,
and on demand a 429 with ``Retry-After`` or a 5xx.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tests.servers import serving

TOKEN = "xoxb-test-token"
WORKSPACE = "https://acme-test.slack.com"
CHANNELS = {"#churn-model": "C0CHURN01", "churn-model": "C0CHURN01", "C0CHURN01": "C0CHURN01"}


@dataclass
class Call:
    method: str
    args: dict[str, Any]


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """ts -> the message as last posted or updated."""
    failures: dict[str, list[tuple[int, str | None, dict[str, str]]]] = field(default_factory=dict)
    dms: dict[str, str] = field(default_factory=dict)
    """The direct-message channels ``conversations.open`` opened (D + the user id's tail)."""
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def fail(
        self,
        method: str,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next call of ``method`` fail (429 + Retry-After, 5xx, or an ``error``)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.failures.setdefault(method, []).append((status, error, headers))

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/api/{method}", methods=["GET", "POST"])
        async def api(method: str, request: Request) -> Response:
            body = await request.body()
            if request.headers.get("content-type", "").startswith("application/json"):
                args = json.loads(body or b"{}")
            else:
                args = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            args |= dict(request.query_params)  # GET methods (chat.getPermalink) send a query
            for name in ("blocks", "view"):
                if isinstance(args.get(name), str):
                    args[name] = json.loads(args[name])
            self.calls.append(Call(method, args))
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse({"ok": False, "error": "invalid_auth"})
            if self.failures.get(method):
                status, error, headers = self.failures[method].pop(0)
                if status != 200:
                    return Response("upstream trouble", status_code=status, headers=headers)
                return JSONResponse({"ok": False, "error": error}, headers=headers)
            return JSONResponse(self.answer(method, args))

        @app.post("/actions/{hook:path}")
        async def response_url(hook: str, request: Request) -> Response:
            """An interaction's response_url (hooks.slack.com/actions/...): answers "ok"."""
            self.calls.append(
                Call("response_url", {"hook": hook, **json.loads(await request.body())})
            )
            return PlainTextResponse("ok")

        return app

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = CHANNELS.get(str(args.get("channel"))) or self.dms.get(str(args.get("channel")))
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral") and not channel:
            return {"ok": False, "error": "channel_not_found"}
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            self.messages[ts] = {**args, "channel": channel}
            return {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}}
        if method == "chat.update":
            if args.get("ts") not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[args["ts"]] = {**args, "channel": channel}
            return {"ok": True, "channel": channel, "ts": args["ts"]}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1700000001.{next(self._ts):06d}"}
        if method == "chat.getPermalink":
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            if args.get("message_ts") not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            return {
                "ok": True,
                "channel": channel,
                "permalink": f"{WORKSPACE}/archives/{channel}/p{args['message_ts'].replace('.', '')}",
            }
        if method == "conversations.open":
            users = str(args.get("users", ""))
            if not users.startswith("U") or "," in users:
                return {"ok": False, "error": "user_not_found"}
            dm = self.dms.setdefault(f"D{users[1:]}", f"D{users[1:]}")
            return {"ok": True, "channel": {"id": dm}}
        if method == "views.open":
            if not args.get("trigger_id"):
                return {"ok": False, "error": "invalid_trigger_id"}
            return {"ok": True, "view": {**args["view"], "id": "V0REASON01"}}
        return {"ok": False, "error": "unknown_method"}


def click_payload(
    user: str, message: dict[str, Any], ts: str, action_id: str, channel: str = "C0CHURN01"
) -> dict[str, Any]:
    """What Slack posts to the app when ``user`` clicks the button ``action_id`` of ``message``
    (a ``block_actions`` interaction, as https://api.slack.com/reference/interaction-payloads)."""
    [button] = [
        e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id
    ]
    return {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": f"trigger-{uuid.uuid4()}",
        "response_url": f"https://hooks.slack.test/actions/{uuid.uuid4()}",
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": ts},
        "message": {"ts": ts},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "phasegate.decision",
                "value": button["value"],
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }


def submission_payload(user: str, view: dict[str, Any], reason: str) -> dict[str, Any]:
    """What Slack posts when ``user`` submits the modal ``view`` (as opened) with ``reason``."""
    return {
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "id": "V0REASON01",
            "hash": f"h-{uuid.uuid4()}",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {
                    "reason": {"reason_input": {"type": "plain_text_input", "value": reason}}
                }
            },
        },
    }


@contextmanager
def fake_slack() -> Iterator[tuple[FakeSlack, str]]:
    """The fake and the ``PHASEGATE_SLACK_API_URL`` that points slack-sdk at it; its
    response_urls are ``<base>/actions/...`` (``PHASEGATE_SLACK_RESPONSE_URL_BASE=<base>/``)."""
    fake = FakeSlack()
    with serving(fake.app()) as base:
        yield fake, f"{base}/api/"
