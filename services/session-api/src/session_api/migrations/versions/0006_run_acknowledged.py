"""runs.acknowledged_by / acknowledged_at: who took note of how an ended run ended

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import session_api.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("acknowledged_by", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column(
                "acknowledged_at", session_api.db.types.UtcDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("acknowledged_at")
        batch.drop_column("acknowledged_by")
