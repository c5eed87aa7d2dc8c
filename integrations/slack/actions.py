"""Outbox handlers that write to Slack: the approval request, notices, ephemeral replies.

The request is made once and then edited: its ``channel:ts`` is the outbox row's external
id, and every later state of the same request (same key prefix) finds it with ``earlier``
and calls ``chat.update`` instead of posting again. A failure is raised as the outbox's
RetryLater/Permanent by :func:`integrations.slack.client.call`; the decision itself is
already stored, so Slack being down delays the message and loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from integrations.actions import Handler
from integrations.slack.client import call
from integrations.slack.effects import EPHEMERAL, MESSAGE, REQUEST

Earlier = Callable[[str], str | None]


def _split(external_id: str) -> tuple[str, str]:
    channel, _, ts = external_id.partition(":")
    return channel, ts


class ApprovalRequest:
    """``slack.request``: post the request once, update it in place ever after."""

    def __init__(self, client: WebClient, earlier: Earlier) -> None:
        self.client = client
        self.earlier = earlier

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        made = external_id or self.earlier(key.rsplit(":", 1)[0] + ":")
        content = {"text": payload["text"], "blocks": payload["blocks"]}
        if made:
            channel, ts = _split(made)
            call(self.client.chat_update, channel=channel, ts=ts, **content)
            return made
        if not payload["post"]:
            return None  # the gate was decided before a request was ever shown: nothing to edit
        data = call(self.client.chat_postMessage, channel=payload["channel"], **content)
        return f"{data['channel']}:{data['ts']}"


class Message:
    """``slack.message``: a notice in the project's channel, in the request's thread when
    it is about a request (a reminder, an escalation)."""

    def __init__(self, client: WebClient, earlier: Earlier) -> None:
        self.client = client
        self.earlier = earlier

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        if external_id:
            return external_id
        channel, thread = payload["channel"], None
        if payload.get("thread_of") and (request := self.earlier(payload["thread_of"])):
            channel, thread = _split(request)
        data = call(
            self.client.chat_postMessage,
            channel=channel,
            text=payload["text"],
            blocks=payload["blocks"],
            **({"thread_ts": thread} if thread else {}),
        )
        return f"{data['channel']}:{data['ts']}"


class Ephemeral:
    """``slack.ephemeral``: a reply only the person who clicked sees."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        data = call(
            self.client.chat_postEphemeral,
            channel=payload["channel"],
            user=payload["user"],
            text=payload["text"],
        )
        return str(data.get("message_ts", "sent"))


def handlers(client: WebClient, earlier: Earlier) -> dict[str, Handler]:
    return {
        REQUEST: ApprovalRequest(client, earlier),
        MESSAGE: Message(client, earlier),
        EPHEMERAL: Ephemeral(client),
    }
