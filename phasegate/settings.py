"""Configuration from the environment (``PHASEGATE_*``) or a ``.env`` file.

Secrets added by later integrations belong here too, as ``SecretStr``, so they are never
printed by accident.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHASEGATE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///phasegate.db"
    policies: Path = Path("policies")
