"""What every flow needs, built once per process: settings, store, policies, sources.

Flows run in a worker or a served process for a long time; the policy set is reloaded at the
start of each run (a broken edit leaves the last valid set in force), the store and its
connection pool are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gates.active import ActivePolicies
from gates.store import Store
from integrations.sources import EvidenceSource, LocalCheckout
from phasegate.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    store: Store
    policies: ActivePolicies
    sources: list[EvidenceSource]


@cache
def runtime() -> Runtime:
    settings = Settings()
    store = Store(settings.database_url)
    store.migrate()
    cache_file = Path(".phasegate") / "policies.last-valid.json"
    policies = ActivePolicies(settings.policies, cache=cache_file)
    policies.reload()
    return Runtime(settings, store, policies, [LocalCheckout(settings.checkouts)])
