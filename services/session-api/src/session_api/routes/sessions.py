"""Sessions: list, create, read; their queue, logs, grids and exposures."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proto.api import (
    PRINTABLE,
    ExposureView,
    GridDetail,
    GridView,
    LogLineView,
    QueueView,
    RunView,
    SessionCreate,
    SessionView,
)
from proto.messages.image import QueueItem
from proto.states import RunState
from session_api.audit import AuditDep
from session_api.auth import Operator, Viewer
from session_api.cassette import new_cassette
from session_api.db.models import (
    Exposure,
    Grid,
    Image,
    LogLine,
    Run,
    Session,
    Target,
)
from session_api.deps import DbDep
from session_api.grids import waiting_queue
from session_api.lookup import session_or_404
from session_api.views import (
    exposure_view,
    image_view,
    latest_run,
    run_view,
    session_view,
    target_view,
)

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_ID = 2**63 - 1
"""The largest id a database integer holds (a larger cursor overflowed: 500)."""


async def queue_view(db: AsyncSession, session: Session) -> QueueView:
    run = await latest_run(db, session.id)
    if run is None or run.state == RunState.ENDED:
        return await waiting_queue(db, session.id, run.id if run else None)
    if not run.queue:
        return QueueView(run_id=run.id if run else None, items=[], counts={})
    return QueueView(
        run_id=run.id,
        items=[QueueItem.model_validate(i) for i in run.queue.get("items", [])],
        counts=run.queue.get("counts", {}),
    )


@router.get("")
async def list_sessions(
    user: Viewer,
    db: DbDep,
    microscope_id: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
    state: RunState | Literal["idle"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    archived: Annotated[
        Literal["hide", "only", "include"],
        Query(description="archived sessions: left out (default), only them, or with the rest"),
    ] = "hide",
) -> list[SessionView]:
    """Sessions, newest first; filter by microscope, latest run state, creation date and
    whether archived (archived ones are left out unless asked for)."""
    query = select(Session).order_by(Session.created_at.desc())
    if archived != "include":
        query = query.where(Session.archived.is_(archived == "only"))
    if microscope_id:
        query = query.where(Session.microscope_id == microscope_id)
    if since:
        query = query.where(Session.created_at >= since)
    if until:
        query = query.where(Session.created_at <= until)
    views = [await session_view(db, s) for s in (await db.scalars(query.limit(500))).all()]
    if state == "idle":
        return [v for v in views if v.run is None]
    if state is not None:
        return [v for v in views if v.run is not None and v.run.state == state]
    return views


@router.post("", status_code=201)
async def create_session(
    body: SessionCreate, user: Operator, db: DbDep, act: AuditDep
) -> SessionView:
    """A new session on a microscope with its cassette of grids and its screening plan."""
    slots = await new_cassette(db, body.microscope_id, body.grids, body.positions)
    session = Session(
        id=uuid.uuid4(),
        name=body.name,
        microscope_id=body.microscope_id,
        created_by=user.username,
        pause_between_grids=body.pause_between_grids,
        plan=body.plan.model_dump() if body.plan else None,
    )
    db.add(session)
    await db.flush()  # no ORM relationship orders the inserts: the session row goes first
    for position, name in slots:
        db.add(Grid(session_id=session.id, name=name, position=position))
    await act.commit(action="create-session", session_id=session.id, target=body.microscope_id)
    return await session_view(db, session)


@router.get("/{session_id}")
async def get_session(session_id: uuid.UUID, user: Viewer, db: DbDep) -> SessionView:
    return await session_view(db, await session_or_404(db, session_id))


@router.get("/{session_id}/queue")
async def get_queue(session_id: uuid.UUID, user: Viewer, db: DbDep) -> QueueView:
    """The latest run's queue: next targets with kind, grid and status, and counts."""
    return await queue_view(db, await session_or_404(db, session_id))


@router.get("/{session_id}/logs", response_model=None)
async def get_logs(
    session_id: uuid.UUID,
    user: Viewer,
    db: DbDep,
    panel: Literal["acquisition", "processing", "system"] | None = None,
    level: Literal["debug", "info", "warning", "error", "critical"] | None = None,
    after_id: int = Query(0, ge=0, le=MAX_ID),
    since: Annotated[datetime | None, Query(description="only lines sent at or after")] = None,
    tail: Annotated[int | None, Query(ge=1, le=5000, description="only the newest N")] = None,
    limit: int = Query(500, ge=1, le=5000),
    format: Literal["json", "text"] = "json",
) -> list[LogLineView] | PlainTextResponse:
    """Log lines of the session in ascending id order. ``level`` is a minimum; ``after_id``
    and ``since`` are reconnect cursors; ``tail`` keeps the newest N; ``format=text`` is the
    whole log as a download."""
    session = await session_or_404(db, session_id)
    if since is not None and since.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["query", "since"],
                    "msg": "give a time zone (e.g. Z)",
                    "type": "value_error",
                }
            ],
        )
    query = select(LogLine).where(LogLine.session_id == session.id, LogLine.id > after_id)
    if since is not None:
        query = query.where(LogLine.sent_at >= since)
    if panel:
        query = query.where(LogLine.panel == panel)
    if level:
        query = query.where(LogLine.level.in_(LEVELS[LEVELS.index(level) :]))
    query = query.order_by(LogLine.id)
    if format == "text":
        lines = (await db.scalars(query)).all()
        text = "".join(
            f"{line.sent_at.isoformat()} {line.level.upper():8} {line.service}: {line.text}\n"
            for line in lines
        )
        name = f"{session.name}-{panel or 'all'}.log".replace(" ", "_")
        return PlainTextResponse(
            text, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )
    if tail is not None:
        newest = query.order_by(None).order_by(LogLine.id.desc()).limit(min(tail, limit))
        rows = list(reversed((await db.scalars(newest)).all()))
    else:
        rows = list((await db.scalars(query.limit(limit))).all())
    return [
        LogLineView(
            id=r.id,
            message_id=r.message_id,
            sent_at=r.sent_at,
            run_id=r.run_id,
            service=r.service,
            panel=r.panel,
            level=r.level,
            text=r.text,
        )
        for r in rows
    ]


@router.get("/{session_id}/grids/{grid_id}")
async def get_grid(
    session_id: uuid.UUID, grid_id: uuid.UUID, user: Viewer, db: DbDep
) -> GridDetail:
    """A grid with its atlas and the squares found on it (on its latest atlas: a grid whose
    first atlas found no squares before its run ended has another)."""
    grid = await db.get(Grid, grid_id)
    if grid is None or grid.session_id != session_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no grid {grid_id} in session {session_id}")
    atlas = await db.get(Image, grid.atlas_id) if grid.atlas_id else None
    squares = (
        await db.scalars(
            select(Target)
            .where(
                Target.grid_id == grid.id,
                Target.kind == "square",
                Target.parent_id == grid.atlas_id,
            )
            .order_by(Target.score.desc())
        )
    ).all()
    return GridDetail(
        grid=GridView(
            id=grid.id,
            name=grid.name,
            position=grid.position,
            status=grid.status,
            atlas_id=grid.atlas_id,
        ),
        atlas=image_view(atlas) if atlas else None,
        squares=[target_view(t) for t in squares],
    )


@router.get("/{session_id}/runs")
async def get_runs(session_id: uuid.UUID, user: Viewer, db: DbDep) -> list[RunView]:
    """Every run of the session, newest first: when, by whom, how it ended, its exposures."""
    await session_or_404(db, session_id)
    rows = (
        await db.scalars(
            select(Run).where(Run.session_id == session_id).order_by(Run.number.desc())
        )
    ).all()
    return [run_view(r) for r in rows]


@router.get("/{session_id}/exposures")
async def get_exposures(
    session_id: uuid.UUID, user: Viewer, db: DbDep, limit: int = Query(1000, ge=1, le=10000)
) -> list[ExposureView]:
    """The session's exposures in acquisition order, with their processing results."""
    await session_or_404(db, session_id)
    rows = (
        await db.scalars(
            select(Exposure)
            .where(Exposure.session_id == session_id)
            .order_by(Exposure.acquired_at)
            .limit(limit)
        )
    ).all()
    return [exposure_view(e) for e in rows]
