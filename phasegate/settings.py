"""Configuration from the environment (``PHASEGATE_*``) or a ``.env`` file.

Secrets are ``SecretStr``: they print as ``**********``, so a settings dump in a log or a
traceback never leaks one. The database URL stays a plain string (every store is opened with
it) but may hold a password: it is shown only through :func:`displayed_url`, in the banner
and in the settings' repr alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def displayed_url(url: str) -> str:
    """A database URL as it may be printed or logged: its password hidden, whether it is in
    the URL's user part or in a ``?password=`` parameter."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<not a database URL; not shown>"
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "hidden"})
    return parsed.render_as_string(hide_password=True)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHASEGATE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///phasegate.db"
    policies: Path = Path("policies")
    checkouts: Path = Path("checkouts")
    """Local evidence source: one folder per project key (a clone of its repository)."""

    github_webhook_secret: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    mlflow_webhook_secret: SecretStr | None = None
    alerts_token: SecretStr | None = None

    slack_bot_token: SecretStr | None = None
    """The Slack app's bot token (xoxb-...): approval requests, notifications, reason dialogs."""
    slack_api_url: str = "https://slack.com/api/"
    slack_response_url_base: str = "https://hooks.slack.com/"
    """Where interactions' ``response_url``s point; phasegate posts to none elsewhere."""

    github_api_url: str = "https://api.github.com"
    github_app_id: str | None = None
    github_private_key: SecretStr | None = None
    """The App's private key: the PEM itself or the path of a file holding it."""
    github_token: SecretStr | None = None
    """A personal access token: fallback when there is no App (commit statuses, no check runs)."""
    github_policy_repo: str | None = None
    """owner/name of the repository whose default branch holds the policies; PRs changing
    its ``policies/`` get the ``phasegate / policy`` check."""
    github_policy_path: str = "policies"
    """Folder of the policies inside that repository."""
    github_pr_comments: bool = False
    """Comment on a pull request when its decision for a gate changes (off: the check says it)."""
    public_url: str | None = None
    """Where phasegate is reachable (for links from check runs and messages): check runs link
    to its status page, ``<public_url>/status/<project>#<gate>``."""

    heartbeat_alerts: Annotated[list[str], NoDecode] = ["Watchdog", "Heartbeat", "DeadMansSwitch"]
    """Alert names (comma-separated) that mean "monitoring is alive", not a problem."""
    monitoring_window_days: int = 30
    """How far back received alerts, heartbeats and reports count as monitoring evidence."""

    max_body_bytes: int = 5 * 1024 * 1024
    batch_size: int = 1000
    """Inbox events one process-inbox pass takes at a time."""
    reclaim_after_s: int = 300
    """An event left 'processing' this long belonged to a worker that died: take it again."""
    max_attempts: int = 5
    """Attempts before an inbox event or a side effect is left 'failed' for a person to see."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, displayed_url(value) if name == "database_url" else value

    @field_validator("heartbeat_alerts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return (
            [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        )
