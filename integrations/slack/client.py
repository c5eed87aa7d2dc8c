"""Calling Slack's Web API: a slack-sdk ``WebClient`` and what its failures mean for a retry.

Slack answers ``{"ok": false, "error": ...}`` (often with HTTP 200) or a bare 429/5xx; slack-sdk
raises :class:`SlackApiError` for all of them. :func:`call` turns them into the outbox's
vocabulary: rate limits and outages are :class:`RetryLater` (honouring ``Retry-After``), a
request Slack will never accept is :class:`Permanent` with a message that says how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from integrations.actions import Permanent, RetryLater
from phasegate.settings import Settings

TRANSIENT = {
    "ratelimited",
    "service_unavailable",
    "fatal_error",
    "internal_error",
    "request_timeout",
}
FIXES = {
    "channel_not_found": "the channel does not exist or the bot cannot see it: check "
    "`slack.channel` of the project and invite the phasegate bot (/invite @phasegate)",
    "not_in_channel": "the phasegate bot is not a member of the channel: invite it "
    "(/invite @phasegate); reconcile sends a still-open request again on its next run",
    "is_archived": "the channel is archived: set another `slack.channel` for the project",
    "invalid_auth": "PHASEGATE_SLACK_BOT_TOKEN is not valid",
    "not_authed": "PHASEGATE_SLACK_BOT_TOKEN is not set",
    "missing_scope": "the bot token lacks a scope (chat:write, chat:write.public, im:write)",
}


def slack_client(settings: Settings) -> WebClient | None:
    """The bot's client, or None when ``PHASEGATE_SLACK_BOT_TOKEN`` is not set."""
    if settings.slack_bot_token is None:
        return None
    base = (
        settings.slack_api_url
        if settings.slack_api_url.endswith("/")
        else settings.slack_api_url + "/"
    )
    return WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=base, timeout=10)


def call(method: Callable[..., Any], **arguments: Any) -> dict[str, Any]:
    """One Web API call (``client.chat_postMessage``...), its data, or the outbox's exception."""
    name = getattr(method, "__name__", "slack").replace("_", ".", 1)
    try:
        return dict(method(**arguments).data)
    except SlackApiError as exc:
        response = exc.response
        error = response.get("error") if isinstance(response.data, dict) else None
        status = response.status_code
        if status == 429 or error == "ratelimited":
            after = (response.headers or {}).get("retry-after") or (response.headers or {}).get(
                "Retry-After"
            )
            wait = float(after) if str(after or "").isdigit() else None
            raise RetryLater(f"{name}: rate limited by Slack", wait) from None
        if status >= 500 or error in TRANSIENT:
            raise RetryLater(f"{name}: Slack answered {status} {error or ''}".strip()) from None
        fix = FIXES.get(error or "", "see https://api.slack.com/methods for the error")
        raise Permanent(f"{name}: Slack refused it ({error or status}): {fix}") from None
    except (URLError, OSError, TimeoutError) as exc:
        raise RetryLater(f"{name}: Slack could not be reached: {exc}") from None
