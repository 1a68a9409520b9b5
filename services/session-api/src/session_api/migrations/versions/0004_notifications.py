"""notify_destinations, notify_subscriptions: who is told what, where (apprise URLs)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import session_api.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = session_api.db.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notify_destinations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("url_box", sa.Text(), nullable=False),
        sa.Column("url_masked", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("last_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("last_ok_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dropped", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_notify_destinations_user_id", "notify_destinations", ["user_id"], unique=False
    )
    op.create_table(
        "notify_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("microscope_id", sa.String(length=64), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["microscope_id"], ["microscopes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_notify_subscriptions_session_id", "notify_subscriptions", ["session_id"], unique=False
    )
    op.create_index(
        "ix_notify_subscriptions_microscope_id",
        "notify_subscriptions",
        ["microscope_id"],
        unique=False,
    )
    op.create_index(
        "ix_notify_subscriptions_scope",
        "notify_subscriptions",
        ["user_id", "session_id", "microscope_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("notify_subscriptions")
    op.drop_table("notify_destinations")
