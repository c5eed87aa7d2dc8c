"""Configuration from the environment (``PHASEGATE_*``) or a ``.env`` file.

Secrets are ``SecretStr``: they print as ``**********``, so a settings dump in a log or a
traceback never leaks one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    max_body_bytes: int = 5 * 1024 * 1024
    batch_size: int = 1000
    """Inbox events one process-inbox pass takes at a time."""
    reclaim_after_s: int = 300
    """An event left 'processing' this long belonged to a worker that died: take it again."""
    max_attempts: int = 5
    """Attempts before an inbox event or a side effect is left 'failed' for a person to see."""
