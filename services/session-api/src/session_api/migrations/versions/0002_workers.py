"""workers: the last heartbeat of each service process

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import session_api.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("instance", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", session_api.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", session_api.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("handled", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("instance"),
    )


def downgrade() -> None:
    op.drop_table("workers")
