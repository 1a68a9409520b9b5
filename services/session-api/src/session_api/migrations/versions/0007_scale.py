"""scale: indexes for every query the pages, routes and projection make; 64-bit log and
audit ids; sessions.latest_run_id; retention marks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:00:00

On PostgreSQL the id columns are rewritten (``bigint``) and every index is built while the
tables are locked: on a year of a facility's data expect minutes (docs/operations.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import session_api.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXES: list[tuple[str, str, list[str], str | None]] = [
    ("ix_sessions_created", "sessions", ["created_at", "id"], None),
    ("ix_sessions_microscope_created", "sessions", ["microscope_id", "created_at", "id"], None),
    ("ix_sessions_latest_run", "sessions", ["latest_run_id"], None),
    ("ix_sessions_idle_created", "sessions", ["created_at", "id"], "latest_run_id IS NULL"),
    ("ix_sessions_archived_created", "sessions", ["created_at", "id"], "archived IS true"),
    ("ix_grids_session_position", "grids", ["session_id", "position"], None),
    ("ix_runs_microscope_started", "runs", ["microscope_id", "started_at"], None),
    ("ix_runs_ended", "runs", ["ended_at", "id"], None),
    ("ix_runs_live", "runs", ["microscope_id", "started_at"], "state <> 'ended'"),
    ("ix_targets_grid_open", "targets", ["grid_id"], "status IN ('queued', 'acquiring')"),
    ("ix_targets_session_status", "targets", ["session_id", "status"], None),
    ("ix_exposures_session_acquired", "exposures", ["session_id", "acquired_at", "id"], None),
    ("ix_exposures_run_acquired", "exposures", ["run_id", "acquired_at"], None),
    ("ix_exposures_run_unprocessed", "exposures", ["run_id"], "status = 'acquired'"),
    ("ix_exposures_hole_id", "exposures", ["hole_id"], None),
    ("ix_log_lines_session_panel", "log_lines", ["session_id", "panel", "id"], None),
    ("ix_log_lines_session_sent", "log_lines", ["session_id", "sent_at"], None),
    (
        "ix_log_lines_session_warning",
        "log_lines",
        ["session_id", "id"],
        "level IN ('warning', 'error', 'critical')",
    ),
    (
        "ix_log_lines_session_error",
        "log_lines",
        ["session_id", "id"],
        "level IN ('error', 'critical')",
    ),
    ("ix_audit_session", "audit", ["session_id", "id"], None),
    ("ix_processed_messages_at", "processed_messages", ["at"], None),
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # SQLite's INTEGER PRIMARY KEY is 64-bit already
        for table in ("log_lines", "audit"):
            op.alter_column(table, "id", type_=sa.BigInteger(), existing_nullable=False)
            seq = op.get_bind().scalar(sa.text(f"SELECT pg_get_serial_sequence('{table}', 'id')"))
            if seq:  # serial made it "AS integer": it would stop at 2^31 - 1 all the same
                op.execute(f"ALTER SEQUENCE {seq} AS bigint")
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("latest_run_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE sessions SET latest_run_id = (SELECT runs.id FROM runs WHERE runs.session_id ="
        " sessions.id ORDER BY runs.number DESC LIMIT 1)"
    )
    with op.batch_alter_table("exposures") as batch:
        batch.drop_index("ix_exposures_run_id")
    for name, table, columns, where in INDEXES:
        if where is None:
            op.create_index(name, table, columns)
        else:
            predicate = sa.text(where)
            op.create_index(
                name, table, columns, postgresql_where=predicate, sqlite_where=predicate
            )
    op.create_table(
        "retention_marks",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ended_at", session_api.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("kind"),
    )


def downgrade() -> None:
    op.drop_table("retention_marks")
    for name, table, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("exposures") as batch:
        batch.create_index("ix_exposures_run_id", ["run_id"], unique=False)
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("latest_run_id")
    if op.get_bind().dialect.name == "postgresql":
        for table in ("log_lines", "audit"):
            seq = op.get_bind().scalar(sa.text(f"SELECT pg_get_serial_sequence('{table}', 'id')"))
            if seq:
                op.execute(f"ALTER SEQUENCE {seq} AS integer")
            op.alter_column(table, "id", type_=sa.Integer(), existing_nullable=False)
