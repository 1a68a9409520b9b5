"""Runs (and taking note of how one ended), squares, images and the audit log."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse
from sqlalchemy import select

from proto.api import AuditView, RefusalReport, RunView, SquareDetail
from proto.states import RunState
from session_api.audit import AuditDep
from session_api.auth import Operator, Staff, Viewer
from session_api.db.models import AuditEntry, Image, Run, Target
from session_api.db.types import utcnow
from session_api.deps import BusDep, DbDep, SettingsDep
from session_api.lookup import session_or_404
from session_api.paging import MAX_ID, cut, link_next
from session_api.routes.control import announce
from session_api.views import image_view, run_view, target_view

router = APIRouter(prefix="/api", tags=["runs"])


@router.get("/runs/{run_id}")
async def get_run(run_id: uuid.UUID, user: Viewer, db: DbDep) -> RunView:
    run = await db.get(Run, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id}")
    return run_view(run)


@router.post("/sessions/{session_id}/runs/{run_id}/acknowledge", name="acknowledge")
async def acknowledge(
    session_id: uuid.UUID,
    run_id: uuid.UUID,
    user: Operator,
    db: DbDep,
    bus: BusDep,
    act: AuditDep,
) -> RunView:
    """Take note of how an ended run ended: its outcome (lost, locked, failed, killed,
    stopped) is no longer shown as a pop-up, to anyone. 409 while the run is live; taking
    note twice changes nothing."""
    session = await session_or_404(db, session_id)
    run = await db.get(Run, run_id)
    if run is None or run.session_id != session.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id} in session {session.name}")
    act.run_id = run.id
    if run.state != RunState.ENDED:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run.number} is {RunState(run.state).label}: it has not ended yet",
        )
    if run.acknowledged_by is not None:
        await act.commit(detail=f"already by {run.acknowledged_by}")
        return run_view(run)
    run.acknowledged_by, run.acknowledged_at = user.username, utcnow()
    await act.commit(detail=f"run {run.number} ended {run.exit_reason}")
    await announce(bus, session, run.id, f"run {run.number} acknowledged", user)
    return run_view(run)


@router.get("/squares/{square_id}")
async def get_square(square_id: uuid.UUID, user: Viewer, db: DbDep) -> SquareDetail:
    """A square, its image (once taken) and the holes found on it."""
    square = await db.get(Target, square_id)
    if square is None or square.kind != "square":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no square {square_id}")
    image = await db.get(Image, square.image_id) if square.image_id else None
    holes = (
        await db.scalars(
            select(Target)
            .where(Target.parent_id == square.id, Target.kind == "hole")
            .order_by(Target.score.desc())
        )
    ).all()
    return SquareDetail(
        square=target_view(square),
        image=image_view(image) if image else None,
        holes=[target_view(h) for h in holes],
    )


@router.get("/images/{image_id}.png", response_class=FileResponse)
async def get_image(
    image_id: uuid.UUID, user: Viewer, db: DbDep, settings: SettingsDep
) -> FileResponse:
    """The PNG of a registered image; only files under the configured data roots."""
    image = await db.get(Image, image_id)
    if image is None or not image.preview_path:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id}")
    path = Path(image.preview_path).resolve()
    roots = [root.resolve() for root in settings.data_roots]
    if not any(path.is_relative_to(root) for root in roots) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"image {image_id} is not on a data volume")
    return FileResponse(
        path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.post("/audit/refusals", status_code=204, name="report-refusal")
async def report_refusal(body: RefusalReport, user: Viewer, act: AuditDep) -> None:
    """Audit a request the ui refused on this user's behalf (a cross-site form or fetch that
    carried their login cookie): ``refused 403``, named after the ui's action. The row names
    the token's user, so it cannot be written in another's name."""
    await act.commit(
        "refused 403",
        action=body.action,
        target=body.request,
        detail=body.reason,
        session_id=body.session_id,
    )


@router.get("/audit")
async def get_audit(
    request: Request,
    response: Response,
    user: Staff,
    db: DbDep,
    session_id: uuid.UUID | None = None,
    limit: int = Query(200, ge=1, le=5000),
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="an audit id: entries before it")
    ] = None,
) -> list[AuditView]:
    """Who did what, when, to which run, and the outcome; newest first, a page at a time."""
    query = select(*AuditEntry.__table__.c)
    if session_id:
        query = query.where(AuditEntry.session_id == session_id)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    query = query.order_by(AuditEntry.id.desc()).limit(limit + 1)
    rows, more = cut((await db.execute(query)).all(), limit)
    if more:
        link_next(request, response, before=rows[-1].id)
    return [
        AuditView(
            id=a.id,
            at=a.at,
            username=a.username,
            action=a.action,
            session_id=a.session_id,
            run_id=a.run_id,
            target=a.target,
            outcome=a.outcome,
            detail=a.detail,
        )
        for a in rows
    ]
