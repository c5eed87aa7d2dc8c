"""What a GitHub delivery needs before it is routed: whether to act on it at all, and the
little I/O some deliveries call for.

- deliveries that cannot change a decision are finished at once, with the reason
  (:func:`integrations.github.inbound.ignored`);
- ``installation`` changes drop the credentials phasegate keeps for that account;
- check runs, suites and statuses without their pull requests are tied to the PRs whose head
  they are about;
- a push to the policy repository's default branch that touches the policy folder installs
  the policies at the branch's head (if valid; see :func:`install` for a push that is no
  longer the head), and then every project is re-evaluated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gates.active import ActivePolicies
from gates.events import Event
from integrations.github import inbound
from integrations.github.client import GithubAccess
from integrations.github.evidence import GithubSource
from integrations.github.policies import install

log = logging.getLogger("phasegate.github")


@dataclass
class Taken:
    """The events to route (none: finish the delivery at once with ``status`` and ``note``);
    ``note`` is kept on the inbox row either way; ``policies_changed``: route with the
    policies now in force."""

    events: list[Event]
    note: str | None = None
    status: Literal["ignored", "done"] = "ignored"
    policies_changed: bool = False


class Intake:
    def __init__(
        self,
        access: GithubAccess | None,
        source: GithubSource | None,
        policies: ActivePolicies,
        app_id: str | None = None,
        policy_repo: str | None = None,
        policy_path: str = "policies",
    ) -> None:
        self.access = access
        self.source = source
        self.policies = policies
        self.app_id = app_id
        self.policy_repo = (policy_repo or "").lower()
        self.policy_path = policy_path.strip("/")

    def take(self, kind: str, payload: dict[str, Any], events: list[Event]) -> Taken:
        """Raises ``GithubUnavailable`` when GitHub could not be asked: the delivery fails
        and is retried later."""
        name = kind.split(".", 1)[0]
        if name == "installation":
            return Taken([], self._installation(payload), status="done")
        if why := inbound.ignored(name, payload, self.app_id):
            return Taken([], why)
        if self.source is not None:
            events = inbound.tie_to_pulls(name, events, self.source.pulls_of_commit)
        if name == "push":
            return self._push(payload, events)
        return Taken(events)

    def _installation(self, payload: dict[str, Any]) -> str:
        installation = payload.get("installation") or {}
        account = (installation.get("account") or {}).get("login") or "?"
        what = f"installation {installation.get('id')} on {account} {payload.get('action')}"
        dropped = self.access.forget(account) if self.access and account != "?" else []
        if dropped:
            log.info("%s: dropped the credentials kept for %s", what, ", ".join(dropped))
            return f"{what}: dropped the credentials kept for {', '.join(dropped)}"
        return f"{what}: no credentials were kept for it"

    def _push(self, payload: dict[str, Any], events: list[Event]) -> Taken:
        repo = str((payload.get("repository") or {}).get("full_name") or "")
        if not self.policy_repo or repo.lower() != self.policy_repo or self.source is None:
            return Taken(events)
        paths = inbound.pushed_paths(payload)
        if paths is not None and not any(p.startswith(self.policy_path + "/") for p in paths):
            return Taken(events)
        sha = str(payload.get("after") or "")
        branch = str(payload.get("ref") or "").removeprefix("refs/heads/")  # the default one
        target = Path(self.policies.directory)
        outcome = install(self.source, repo, branch, sha, self.policy_path, target)
        log.info("%s", outcome.note)
        if not outcome.installed:
            return Taken(events, outcome.note, status="done")
        for error in self.policies.reload():  # valid when installed; a race shows up here
            log.error("policy error after installing %s@%s: %s", repo, outcome.sha[:12], error)
        everyone = [
            Event(
                source="github",
                kind="policies.installed",
                subject={"project": key},
                occurred_at=events[0].occurred_at,
                payload={"repo": repo, "after": outcome.sha},
            )
            for key in sorted(self.policies.current.projects)
        ]
        return Taken(events + everyone, outcome.note, status="done", policies_changed=True)
