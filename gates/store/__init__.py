"""phasegate's persistent store: projects and phases, evaluations, approvals and waivers, the
event inbox, the side-effect outbox and a hash-chained audit log, on SQLite or PostgreSQL."""

from gates.store.audit import AuditReport
from gates.store.store import Effect, InboxEvent, Store, UnknownProjectError
from gates.store.tables import (
    ApprovalRow,
    AuditRow,
    EvaluationRow,
    InboxEventRow,
    OutboxRow,
    ProjectRow,
    TransitionRow,
    WaiverRow,
)

__all__ = [
    "ApprovalRow",
    "AuditReport",
    "AuditRow",
    "Effect",
    "EvaluationRow",
    "InboxEvent",
    "InboxEventRow",
    "OutboxRow",
    "ProjectRow",
    "Store",
    "TransitionRow",
    "UnknownProjectError",
    "WaiverRow",
]
