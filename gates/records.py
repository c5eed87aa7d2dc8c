"""Approvals and waivers as the evaluator sees them.

They are plain values handed to :func:`gates.evaluate.evaluate` (by the store, a CLI scenario
file or a policy test), never looked up by the evaluator itself: that is what keeps
evaluation a pure function.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Approval(BaseModel):
    """One person's decision on one gate of one project.

    ``digest`` is the gate digest (see :func:`gates.evidence.gate_digest`) of the evidence the
    person was shown; when the evidence the gate reads changes, the approval stops counting.
    """

    model_config = ConfigDict(extra="forbid")

    person: str = Field(
        description="Person id from the policies (or their GitHub login / Slack id / email)."
    )
    decision: Literal["approve", "reject"] = "approve"
    digest: str | None = Field(
        default=None, description="Gate digest the decision was given on; null binds to nothing."
    )
    at: datetime
    reason: str | None = None


class Waiver(BaseModel):
    """A named person's permission to let one failing check pass, with a reason, until a time."""

    model_config = ConfigDict(extra="forbid")

    check: str = Field(description="Id of the check (or group) being waived.")
    person: str
    reason: str
    at: datetime
    expires_at: datetime


class SentBack(BaseModel):
    """When the project was last sent back by a regression, and to which phase.

    A regression says the model in production misbehaved: decisions given before it were about
    what has just been found wanting, so they stop counting, even when the evidence they were
    given on has not changed yet (the same version, the same digest).
    """

    model_config = ConfigDict(frozen=True)

    at: datetime
    to_phase: str
