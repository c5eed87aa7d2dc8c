"""Telling a person that their click was not recorded, through the interaction's response_url.

The receiver answers Slack within its 3 s even when the inbox write is still waiting (another
process holds the SQLite write lock), so a click can be acknowledged before it is kept. If
that write then fails, the click is lost and Slack showed nothing wrong: the person would
wait for an approval that never counts. So they are told, privately, to click again. Slack
accepts messages on an interaction's ``response_url`` (on hooks.slack.com) for 30 minutes.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.webhook import WebhookClient

log = logging.getLogger("phasegate.slack")

TEXT = (
    ":warning: phasegate could not record your click (its database was busy or down), "
    "so nothing was approved or rejected. Please click again."
)


class Unrecorded:
    """Posts :data:`TEXT` to the payload's ``response_url``, only under ``allowed_base``
    (Slack's, or a fake's in tests): the URL comes from a request, even if a signed one."""

    def __init__(self, allowed_base: str) -> None:
        self.allowed_base = allowed_base

    def __call__(self, payload: dict[str, Any]) -> None:
        url = payload.get("response_url")
        if not isinstance(url, str) or not url.startswith(self.allowed_base):
            log.error(
                "cannot tell the person their Slack click was lost: the interaction has no "
                "response_url under %s",
                self.allowed_base,
            )
            return
        try:
            answer = WebhookClient(url, timeout=10).send(
                text=TEXT, response_type="ephemeral", replace_original=False
            )
        except OSError as exc:  # connection refused, timeouts (urllib's URLError is an OSError)
            log.error("could not tell the person their Slack click was lost: %s", exc)
            return
        if answer.status_code != 200:
            log.error(
                "could not tell the person their Slack click was lost: %s %s",
                answer.status_code,
                answer.body,
            )
        else:
            log.info("told the person through response_url that their click was not recorded")
