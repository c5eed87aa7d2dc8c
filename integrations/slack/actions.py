"""Outbox handlers that write to Slack: the approval request, notices, DMs, ephemeral replies.

The request is made once and then edited: its ``channel:ts`` is the outbox row's external
id, and every later state of the same request (same key prefix) finds it with
``outbox_external_id`` and calls ``chat.update`` instead of posting again. Whichever state's
row is performed, the message is given the state queued last: a state held back by a rate
limit and performed after a newer one would otherwise take the newer one back. A failure is
raised as the outbox's RetryLater/Permanent by :func:`integrations.slack.client.call`; the
decision itself is already stored, so Slack being down delays the message and loses nothing.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

from gates.store import Store
from integrations.actions import Handler, Permanent, RetryLater, newest_state
from integrations.slack.client import call
from integrations.slack.effects import DIRECT, EPHEMERAL, MESSAGE, REQUEST


def _split(external_id: str) -> tuple[str, str]:
    channel, _, ts = external_id.partition(":")
    return channel, ts


def permalink(client: WebClient, external_id: str) -> str:
    """Slack's own link to a message (``chat.getPermalink``): workspace URL included."""
    channel, ts = _split(external_id)
    return str(call(client.chat_getPermalink, channel=channel, message_ts=ts)["permalink"])


class ApprovalRequest:
    """``slack.request``: post the request once, update it in place ever after, always to
    the newest state queued for it."""

    def __init__(self, client: WebClient, store: Store) -> None:
        self.client = client
        self.store = store

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        prefix = key.rsplit(":", 1)[0] + ":"
        made = external_id or self.store.outbox_external_id(prefix)
        newest = newest_state(self.store.latest_outbox, prefix, key, payload)
        if newest is None:
            return made  # superseded: the message already shows a newer state
        payload = newest
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

    def __init__(self, client: WebClient, store: Store) -> None:
        self.client = client
        self.store = store

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        if external_id:
            return external_id
        channel, thread = payload["channel"], None
        if payload.get("thread_of") and (
            request := self.store.outbox_external_id(payload["thread_of"])
        ):
            channel, thread = _split(request)
        data = call(
            self.client.chat_postMessage,
            channel=channel,
            text=payload["text"],
            blocks=payload["blocks"],
            **({"thread_ts": thread} if thread else {}),
        )
        return f"{data['channel']}:{data['ts']}"


class DirectMessage:
    """``slack.dm``: tell one approver, in a DM, that a request waits for them, with the
    request's link (so it is sent once the request is posted)."""

    def __init__(self, client: WebClient, store: Store) -> None:
        self.client = client
        self.store = store

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        if external_id:
            return external_id
        request = self.store.outbox_external_id(payload["request"])
        if request is None:
            raise RetryLater("the approval request is not posted yet; the DM links to it", 30)
        text = f"{payload['text']}\n{permalink(self.client, request)}"
        opened = call(self.client.conversations_open, users=payload["user"])
        data = call(self.client.chat_postMessage, channel=opened["channel"]["id"], text=text)
        return f"{data['channel']}:{data['ts']}"


class Ephemeral:
    """``slack.ephemeral``: a reply only the person who clicked sees."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def __call__(
        self, key: str, payload: dict[str, Any], external_id: str | None, retried: bool = False
    ) -> str | None:
        text = payload["text"]
        if payload.get("link_to"):
            try:
                text += (
                    f" Decide on the current request: {permalink(self.client, payload['link_to'])}"
                )
            except Permanent:  # the message is gone: the refusal still says what happened
                text += " The current request is in this channel."
        data = call(
            self.client.chat_postEphemeral,
            channel=payload["channel"],
            user=payload["user"],
            text=text,
        )
        return str(data.get("message_ts", "sent"))


def handlers(client: WebClient, store: Store) -> dict[str, Handler]:
    return {
        REQUEST: ApprovalRequest(client, store),
        MESSAGE: Message(client, store),
        DIRECT: DirectMessage(client, store),
        EPHEMERAL: Ephemeral(client),
    }
