"""The database of Gridpilot; session-api is its only owner."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    BindParameter,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    false,
    literal,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from session_api.db.types import UtcDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")
"""A 64-bit row id (PostgreSQL ``bigint``; SQLite's ``INTEGER PRIMARY KEY`` is 64-bit already
and must keep that exact type to stay the autoincrementing rowid)."""


def partial(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index over the rows matching ``where`` (SQL), on PostgreSQL and SQLite alike.

    A query uses it only when its own WHERE clause implies ``where``: write such filters with
    literal values (``const``), not bound parameters."""
    return Index(
        name,
        *columns,
        unique=unique,
        postgresql_where=text(where),
        sqlite_where=text(where),
    )


def const(value: str) -> BindParameter[str]:
    """``value`` written into the SQL itself rather than sent as a parameter: the planner
    then sees it and can use a partial index whose predicate names it (with a parameter, a
    cached generic plan cannot)."""
    return literal(value, literal_execute=True)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Token(Base):
    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Microscope(Base):
    __tablename__ = "microscopes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    driver: Mapped[str] = mapped_column(String(64), default="unknown")
    volumes: Mapped[list[Any]] = mapped_column(default=list)
    bytes_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    reported_at: Mapped[datetime | None]
    lease_holder: Mapped[dict[str, Any] | None]


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(120))
    microscope_id: Mapped[str] = mapped_column(ForeignKey("microscopes.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    pause_between_grids: Mapped[bool] = mapped_column(Boolean, default=False)
    live_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    """The run that may still drive the scope; set only by a conditional update (one Start
    wins), cleared when that run ends."""
    plan: Mapped[dict[str, Any] | None]
    """The screening plan (``proto.api.ScreeningPlan.model_dump()``); ``None``: defaults."""
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Hidden from the default sessions list and not startable; its data is kept."""
    latest_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    """The newest run (live or ended), set with ``live_run_id`` when a run starts and never
    cleared: the sessions list filters on its state in SQL (``None``: never started)."""

    __table_args__ = (
        Index("ix_sessions_created", "created_at", "id"),
        Index("ix_sessions_microscope_created", "microscope_id", "created_at", "id"),
        Index("ix_sessions_latest_run", "latest_run_id"),
        partial("ix_sessions_idle_created", "created_at", "id", where="latest_run_id IS NULL"),
        # the list asks for ``archived IS true``: the predicate is written the same way
        partial("ix_sessions_archived_created", "created_at", "id", where="archived IS true"),
    )


class Grid(Base):
    __tablename__ = "grids"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    atlas_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (Index("ix_grids_session_position", "session_id", "position"),)


LIVE_RUNS = "state <> 'ended'"
"""The predicate of the live-runs index; queries write it as ``Run.state != const("ended")``."""


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    microscope_id: Mapped[str] = mapped_column(ForeignKey("microscopes.id"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(24))
    exit_reason: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    requested_by: Mapped[str] = mapped_column(String(64))
    pause_between_grids: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    decision: Mapped[dict[str, Any] | None]
    queue: Mapped[dict[str, Any] | None]
    current_grid: Mapped[str | None] = mapped_column(String(120))
    exposures: Mapped[int] = mapped_column(Integer, default=0)
    exposures_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Exposures whose processing failed (``image.failed``: a corrupt movie, a failed fit)."""
    last_exposure_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    """Who took note of how the run ended: its outcome is no longer shown as a pop-up."""
    acknowledged_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_runs_session_number", "session_id", "number", unique=True),
        Index("ix_runs_microscope_started", "microscope_id", "started_at"),
        Index("ix_runs_ended", "ended_at", "id"),
        partial("ix_runs_live", "microscope_id", "started_at", where=LIVE_RUNS),
    )


class Image(Base):
    """An atlas, square image, thumbnail or power spectrum the pages can show."""

    __tablename__ = "images"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    grid_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    path: Mapped[str] = mapped_column(Text)
    preview_path: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    pixel_size_a: Mapped[float] = mapped_column(Float, default=1.0)


OPEN_TARGETS = "status IN ('queued', 'acquiring')"
"""A run's queue still to do; queries write it with ``const`` values."""


class Target(Base):
    __tablename__ = "targets"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    grid_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    parent_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    y: Mapped[float] = mapped_column(Float)
    x: Mapped[float] = mapped_column(Float)
    size_px: Mapped[float] = mapped_column(Float)
    cls: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    ice_nm: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str | None] = mapped_column(String(16))
    image_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        # most targets are never queued: only those that are sit in the grid index
        partial("ix_targets_grid_open", "grid_id", where=OPEN_TARGETS),
        Index("ix_targets_session_status", "session_id", "status"),
    )


UNPROCESSED = "status = 'acquired'"
"""Exposures processing has not answered yet (a run's backlog): few, so their own index."""


class Exposure(Base):
    __tablename__ = "exposures"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    grid_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    hole_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    path: Mapped[str] = mapped_column(Text)
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="acquired")
    error: Mapped[str | None] = mapped_column(Text)
    defocus1_a: Mapped[float | None] = mapped_column(Float)
    defocus2_a: Mapped[float | None] = mapped_column(Float)
    astig_angle_deg: Mapped[float | None] = mapped_column(Float)
    ctf_fit_resolution_a: Mapped[float | None] = mapped_column(Float)
    ctf_cc: Mapped[float | None] = mapped_column(Float)
    ctf_low_confidence: Mapped[bool | None] = mapped_column(Boolean)
    drift_total_a: Mapped[float | None] = mapped_column(Float)
    ice_nm: Mapped[float | None] = mapped_column(Float)
    thumbnail_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    spectrum_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    processed_at: Mapped[datetime | None]
    processing_s: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_exposures_session_acquired", "session_id", "acquired_at", "id"),
        Index("ix_exposures_run_acquired", "run_id", "acquired_at"),
        partial("ix_exposures_run_unprocessed", "run_id", where=UNPROCESSED),
    )


WARNING_UP = "level IN ('warning', 'error', 'critical')"
ERROR_UP = "level IN ('error', 'critical')"


class LogLine(Base):
    __tablename__ = "log_lines"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    sent_at: Mapped[datetime]
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    service: Mapped[str] = mapped_column(String(32))
    panel: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    logger: Mapped[str] = mapped_column(String(120))
    text: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_log_lines_session_id_id", "session_id", "id"),
        Index("ix_log_lines_session_panel", "session_id", "panel", "id"),
        Index("ix_log_lines_session_sent", "session_id", "sent_at"),
        # a level filter is a minimum: the two that select few lines get their own index, in
        # id order, so "errors of the busy session" reads a page, not the session's log
        partial("ix_log_lines_session_warning", "session_id", "id", where=WARNING_UP),
        partial("ix_log_lines_session_error", "session_id", "id", where=ERROR_UP),
    )


class AuditEntry(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    target: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_audit_session", "session_id", "id"),)


class Processed(Base):
    """Message ids this service has projected, so a redelivered event changes nothing."""

    __tablename__ = "processed_messages"
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Worker(Base):
    """A service process as its last heartbeat described it (the operations page)."""

    __tablename__ = "workers"
    instance: Mapped[str] = mapped_column(String(128), primary_key=True)
    service: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    interval_s: Mapped[float] = mapped_column(Float)
    handled: Mapped[int] = mapped_column(Integer, default=0)


class NotifyDestination(Base):
    """One place a user's notifications go: an apprise URL, stored encrypted (``url_box``),
    with the delivery status the settings page shows."""

    __tablename__ = "notify_destinations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    url_box: Mapped[str] = mapped_column(Text)
    """The apprise URL, encrypted with a key derived from the service secret."""
    url_masked: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None]
    last_ok_at: Mapped[datetime | None]
    last_error_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dropped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class NotifySubscription(Base):
    """What one user wants to be told, about one session or every session of a microscope."""

    __tablename__ = "notify_subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    microscope_id: Mapped[str] = mapped_column(ForeignKey("microscopes.id"), index=True)
    """The session's microscope for a session subscription (disk notices are per scope)."""
    events: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_notify_subscriptions_scope", "user_id", "session_id", "microscope_id"),
    )


class RetentionMark(Base):
    """How far retention has gone through the sessions whose newest run ended, per kind
    (``targets``, ``exposures``): the (ended_at, run id) of the last one it handled."""

    __tablename__ = "retention_marks"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    ended_at: Mapped[datetime]
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
