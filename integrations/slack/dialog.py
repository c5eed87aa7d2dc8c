"""Opening the reason dialog of a Reject click, from the receiver.

Slack accepts ``views.open`` only within 3 seconds of the click (the ``trigger_id`` expires),
which the inbox → Prefect → flow path cannot promise. So the receiver opens the dialog
itself, right after the click is stored and answered (a background task of the response).
It only opens a form: whether the person may reject is judged when the submitted reason
comes back through the inbox, like every other decision.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient

from integrations.actions import Permanent, RetryLater
from integrations.slack import blocks
from integrations.slack.client import call

log = logging.getLogger("phasegate.slack")


class ReasonDialog:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def wanted(self, payload: dict[str, Any]) -> bool:
        return payload.get("type") == "block_actions" and any(
            isinstance(a, dict) and a.get("action_id") == blocks.REJECT
            for a in payload.get("actions") or []
        )

    def __call__(self, payload: dict[str, Any]) -> None:
        action = next(a for a in payload["actions"] if a.get("action_id") == blocks.REJECT)
        channel = (payload.get("channel") or {}).get("id")
        ts = (payload.get("container") or {}).get("message_ts")
        try:
            view = blocks.reason_dialog(action.get("value", ""), channel, ts)
            call(self.client.views_open, trigger_id=payload.get("trigger_id"), view=view)
        except (RetryLater, Permanent, ValueError, KeyError) as exc:
            log.warning("could not open the reject dialog: %s", exc)
            self._tell(payload, channel, exc)

    def _tell(self, payload: dict[str, Any], channel: str | None, exc: Exception) -> None:
        """The person clicked and saw nothing: say so, only to them, and what to do."""
        user = (payload.get("user") or {}).get("id")
        if not channel or not user:
            return
        text = (
            f"phasegate could not open the dialog for your rejection's reason ({exc}). "
            "Nothing was recorded: click Reject again (the dialog must open within 3 seconds "
            "of the click)."
        )
        try:
            call(self.client.chat_postEphemeral, channel=channel, user=user, text=text)
        except (RetryLater, Permanent) as failed:
            log.warning("could not tell %s that the dialog did not open: %s", user, failed)
