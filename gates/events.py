"""Events as the engine sees them: what happened, where, and to which projects it matters.

Each integration turns its raw webhook into an :class:`Event` (``integrations/*/inbound.py``);
:func:`route` then finds the projects an event concerns from the policies alone. Keeping
routing here, pure, means "why did my webhook do nothing?" has an answer that can be tested
and printed: the ``reason`` of an ignored event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gates.policy import PolicySet

Source = Literal["github", "mlflow", "monitoring", "slack", "local", "phasegate"]


class Event(BaseModel):
    """A normalised event. ``subject`` holds what routing needs (repo, model, labels...)."""

    model_config = ConfigDict(extra="forbid")

    source: Source
    kind: str = Field(
        description="e.g. pull_request.synchronize, model_version.created, alert.firing"
    )
    subject: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(
        default_factory=dict, description="Alert labels, issue labels..."
    )
    occurred_at: datetime
    payload: dict[str, Any] = Field(default_factory=dict)

    def for_cel(self) -> dict[str, Any]:
        """What a regression rule's ``when`` sees as ``event``."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Routing:
    projects: tuple[str, ...]
    reason: str  # why these projects, or why none


def route(policies: PolicySet, event: Event) -> Routing:
    """The projects an event concerns: by repository, registered model, alert labels or key."""
    subject = event.subject
    if "project" in subject or "project" in event.labels:
        key = subject.get("project") or event.labels["project"]
        if key in policies.projects:
            return Routing((key,), f"names project {key}")
        return Routing((), f"names project '{key}', which no policy defines")
    if repo := subject.get("repo"):
        hits = tuple(
            k
            for k, p in policies.projects.items()
            if p.github and p.github.repo.lower() == repo.lower()
        )
        return Routing(hits, f"repository {repo}" + ("" if hits else " belongs to no project"))
    model = subject.get("model") or event.labels.get("model")
    if model:
        hits = tuple(
            k for k, p in policies.projects.items() if p.mlflow and model in p.mlflow.models
        )
        return Routing(hits, f"model {model}" + ("" if hits else " is registered by no project"))
    return Routing((), f"a {event.source} {event.kind} event names no repository, model or project")
