"""The store's first schema: projects, transitions, evaluations, approvals, waivers, inbox,
outbox and the audit log.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _at(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=nullable)


def _text(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project"], ["projects.key"], name=f"fk_{table}_project_projects"
    )


def upgrade() -> None:
    op.create_table(
        "projects",
        _str("key"),
        _str("phase"),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("key", name="pk_projects"),
    )
    op.create_table(
        "evaluations",
        _id(),
        _str("project"),
        _str("gate"),
        _str("status"),
        _str("mode"),
        _str("policy_hash"),
        _str("evidence_digest"),
        _str("gate_digest"),
        sa.Column("result", sa.JSON(), nullable=False),
        _at("at"),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
        _project_fk("evaluations"),
    )
    op.create_index("ix_evaluations_project_gate_at", "evaluations", ["project", "gate", "at"])
    op.create_table(
        "transitions",
        _id(),
        _str("project"),
        _str("from_phase", nullable=True),
        _str("to_phase"),
        _str("kind"),
        _text("reason"),
        sa.Column("evaluation_id", sa.Integer(), nullable=True),
        _str("rule", nullable=True),
        _at("at"),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        _project_fk("transitions"),
        sa.ForeignKeyConstraint(
            ["evaluation_id"], ["evaluations.id"], name="fk_transitions_evaluation_id_evaluations"
        ),
    )
    op.create_index("ix_transitions_project_at", "transitions", ["project", "at"])
    op.create_table(
        "approvals",
        _id(),
        _str("project"),
        _str("gate"),
        _str("person"),
        _str("decision"),
        _str("digest"),
        _text("reason", nullable=True),
        _str("source"),
        _at("at"),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        _project_fk("approvals"),
        sa.UniqueConstraint(
            "project", "gate", "person", "digest", name="uq_approvals_project_gate_person_digest"
        ),
    )
    op.create_table(
        "waivers",
        _id(),
        _str("project"),
        _str("gate"),
        _str("check_id"),
        _str("person"),
        _text("reason"),
        _at("at"),
        _at("expires_at"),
        sa.PrimaryKeyConstraint("id", name="pk_waivers"),
        _project_fk("waivers"),
    )
    op.create_index("ix_waivers_project_gate", "waivers", ["project", "gate"])
    op.create_table(
        "inbox_events",
        _id(),
        _str("source"),
        _str("delivery_id"),
        _str("kind"),
        sa.Column("payload", sa.JSON(), nullable=False),
        _at("received_at"),
        _str("status"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _at("claimed_at", nullable=True),
        _text("error", nullable=True),
        _at("processed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_inbox_events"),
        sa.UniqueConstraint("source", "delivery_id", name="uq_inbox_events_source_delivery_id"),
    )
    op.create_index("ix_inbox_events_status_id", "inbox_events", ["status", "id"])
    op.create_table(
        "outbox",
        _id(),
        _str("idempotency_key"),
        _str("kind"),
        sa.Column("payload", sa.JSON(), nullable=False),
        _str("status"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _text("last_error", nullable=True),
        _str("external_id", nullable=True),
        _at("created_at"),
        _at("claimed_at", nullable=True),
        _at("not_before", nullable=True),
        _at("done_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    )
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])
    op.create_table(
        "audit_log",
        _id(),
        _at("at"),
        _str("actor"),
        _str("action"),
        _str("subject"),
        sa.Column("data", sa.JSON(), nullable=False),
        _str("prev_hash"),
        _str("hash"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
    )


def downgrade() -> None:
    for table in (
        "audit_log",
        "outbox",
        "inbox_events",
        "waivers",
        "approvals",
        "transitions",
        "evaluations",
        "projects",
    ):
        op.drop_table(table)
