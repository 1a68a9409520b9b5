"""Sessions: list, create, read; their queue, logs, grids and exposures."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from proto.api import (
    PRINTABLE,
    ExposureSeries,
    ExposureView,
    GridDetail,
    GridView,
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
    Run,
    Session,
    Target,
    const,
)
from session_api.deps import DbDep
from session_api.grids import waiting_queue
from session_api.lookup import session_or_404
from session_api.paging import MAX_NUMBER, bad_query, cut, link_next
from session_api.views import (
    LatestRun,
    exposure_view,
    image_view,
    latest_run,
    run_view,
    session_rows,
    session_view,
    session_views,
    target_view,
)

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


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
    request: Request,
    response: Response,
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
    limit: int = Query(100, ge=1, le=500),
    before: Annotated[
        uuid.UUID | None, Query(description="the last session of the previous page")
    ] = None,
) -> list[SessionView]:
    """Sessions, newest first, a page at a time; filter by microscope, latest run state
    (``idle``: never started), creation date and whether archived (archived ones are left
    out unless asked for). Every filter is applied before the page is cut, so an old matching
    session is found however many newer ones do not match."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise bad_query(name, "give a time zone (e.g. Z)")
    query = session_rows(select(Session)).order_by(Session.created_at.desc(), Session.id.desc())
    if archived != "include":
        query = query.where(Session.archived.is_(archived == "only"))
    if microscope_id:
        query = query.where(Session.microscope_id == microscope_id)
    if since:
        query = query.where(Session.created_at >= since)
    if until:
        query = query.where(Session.created_at <= until)
    if state == "idle":
        query = query.where(Session.latest_run_id.is_(None))
    elif state is not None:
        query = query.where(LatestRun.state == const(state.value))
    if before is not None:
        last = await db.get(Session, before)
        if last is None:
            raise bad_query("before", f"no session {before}")
        query = query.where(tuple_(Session.created_at, Session.id) < (last.created_at, last.id))
    found = (await db.execute(query.limit(limit + 1))).all()
    rows, more = cut([(r[0], r[1], r[2]) for r in found], limit)
    if more:
        link_next(request, response, before=str(rows[-1][0].id))
    return await session_views(db, rows)


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
async def get_runs(
    session_id: uuid.UUID,
    request: Request,
    response: Response,
    user: Viewer,
    db: DbDep,
    limit: int = Query(100, ge=1, le=1000),
    before: Annotated[
        int | None, Query(ge=1, le=MAX_NUMBER, description="a run number: runs before it")
    ] = None,
) -> list[RunView]:
    """The session's runs, newest first: when, by whom, how it ended, its exposures."""
    await session_or_404(db, session_id)
    query = select(Run).where(Run.session_id == session_id)
    if before is not None:
        query = query.where(Run.number < before)
    rows, more = cut(
        (await db.scalars(query.order_by(Run.number.desc()).limit(limit + 1))).all(), limit
    )
    if more:
        link_next(request, response, before=rows[-1].number)
    return [run_view(r) for r in rows]


@router.get("/{session_id}/exposures")
async def get_exposures(
    session_id: uuid.UUID,
    request: Request,
    response: Response,
    user: Viewer,
    db: DbDep,
    limit: int = Query(200, ge=1, le=5000),
    before: Annotated[
        uuid.UUID | None, Query(description="the last exposure of the previous page")
    ] = None,
) -> list[ExposureView]:
    """The session's exposures, newest first, with their processing results, a page at a
    time (``before``: the last exposure of the page before)."""
    await session_or_404(db, session_id)
    query = select(*Exposure.__table__.c).where(Exposure.session_id == session_id)
    if before is not None:
        last = await db.get(Exposure, before)
        if last is None or last.session_id != session_id:
            raise bad_query("before", f"no exposure {before} in session {session_id}")
        query = query.where(tuple_(Exposure.acquired_at, Exposure.id) < (last.acquired_at, last.id))
    query = query.order_by(Exposure.acquired_at.desc(), Exposure.id.desc()).limit(limit + 1)
    rows, more = cut((await db.execute(query)).all(), limit)
    if more:
        link_next(request, response, before=str(rows[-1].id))
    return [exposure_view(e) for e in rows]


SERIES = tuple(name for name in ExposureSeries.model_fields if name != "more")
"""The columns of ``exposures`` the plots draw (``ExposureSeries`` names them alike)."""


@router.get("/{session_id}/exposures/series")
async def get_exposure_series(
    session_id: uuid.UUID,
    user: Viewer,
    db: DbDep,
    limit: int = Query(1000, ge=1, le=5000),
) -> ExposureSeries:
    """What the plots draw of the session's newest ``limit`` exposures, newest first, a list
    per column (the same exposures as a page of ``/exposures`` of that size)."""
    await session_or_404(db, session_id)
    query = (
        select(*(Exposure.__table__.c[name] for name in SERIES))
        .where(Exposure.session_id == session_id)
        .order_by(Exposure.acquired_at.desc(), Exposure.id.desc())
        .limit(limit + 1)
    )
    rows, more = cut((await db.execute(query)).all(), limit)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in SERIES]
    return ExposureSeries(
        **{name: list(values) for name, values in zip(SERIES, columns, strict=True)}, more=more
    )
