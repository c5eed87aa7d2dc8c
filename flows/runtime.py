"""What every flow needs, built once per process: settings, store, policies, sources.

Flows run in a worker or a served process for a long time; the policy set is reloaded at the
start of each run (a broken edit leaves the last valid set in force), the store and its
connection pool are kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from pydantic import SecretStr
from slack_sdk import WebClient

from gates.active import ActivePolicies
from gates.store import Store
from integrations.github.client import GithubAccess, GithubConfig
from integrations.github.evidence import GithubSource
from integrations.mlflow.evidence import mlflow_source
from integrations.monitoring.evidence import MonitoringSource
from integrations.slack.client import slack_client
from integrations.sources import EvidenceSource, LocalCheckout
from phasegate.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    store: Store
    policies: ActivePolicies
    sources: list[EvidenceSource]
    github: GithubAccess | None = None
    slack: WebClient | None = None


def github_access(settings: Settings) -> GithubAccess | None:
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    config = GithubConfig(
        api_url=settings.github_api_url,
        app_id=settings.github_app_id,
        private_key=secret(settings.github_private_key),
        token=secret(settings.github_token),
    )
    return GithubAccess(config) if config.mode else None


@cache
def runtime() -> Runtime:
    settings = Settings()
    store = Store(settings.database_url)
    store.migrate()
    cache_file = Path(".phasegate") / "policies.last-valid.json"
    policies = ActivePolicies(settings.policies, cache=cache_file)
    policies.reload()
    sources: list[EvidenceSource] = [LocalCheckout(settings.checkouts)]
    github = github_access(settings)
    if github is not None:
        sources.append(GithubSource(github, lambda: policies.current))
    if (mlflow := mlflow_source(os.environ)) is not None:  # MLflow's own variables
        sources.append(mlflow)
    window = timedelta(days=settings.monitoring_window_days)
    sources.append(
        MonitoringSource(store, lambda: policies.current, settings.heartbeat_alerts, window)
    )
    return Runtime(settings, store, policies, sources, github, slack=slack_client(settings))
