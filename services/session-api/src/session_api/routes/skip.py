"""Skipping targets of a live run: *Skip this target* and *Skip rest of this square*.

The run honours a skip of what it is acquiring at its next safe point (never in the middle
of an exposure); a queued target is skipped at once. Its queue status becomes ``skipped``.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import or_, select

from proto import messages as m
from proto.api import RunView, SkipRequest
from session_api.audit import AuditDep
from session_api.auth import Operator
from session_api.db.models import Run, Session, Target
from session_api.deps import BusDep, DbDep
from session_api.lookup import live_run_or_409, session_or_404
from session_api.routes.control import publish
from session_api.views import run_view

router = APIRouter(prefix="/api/sessions/{session_id}", tags=["control"])

LEFT = ("acquiring", "queued")


def _name(t: Target) -> str:
    return f"{t.kind} {t.id.hex[:6]}"


async def _target(db: DbDep, session: Session, run: Run, target_id: uuid.UUID | None) -> Target:
    """The target named, or the one the run is acquiring now (as last projected)."""
    if target_id is None:
        items = (run.queue or {}).get("items", [])
        acquiring = next((i for i in items if i.get("status") == "acquiring"), None)
        if acquiring is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"run {run.number} of {session.name} is acquiring nothing now ({run.state})",
            )
        target_id = uuid.UUID(str(acquiring["target_id"]))
    target = await db.get(Target, target_id)
    if target is None or target.session_id != session.id:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no target {target_id} in session {session.name}"
        )
    return target


@router.post("/skip-target", status_code=202)
async def skip_target(
    session_id: uuid.UUID,
    body: SkipRequest,
    user: Operator,
    db: DbDep,
    bus: BusDep,
    act: AuditDep,
) -> RunView:
    """Skip the target being acquired (or a queued one) at the run's next safe point."""
    session = await session_or_404(db, session_id)
    run = await live_run_or_409(db, session, "skip a target")
    act.run_id = run.id
    target = await _target(db, session, run, body.target_id)
    act.target = str(target.id)
    if target.status not in LEFT:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{_name(target)} is {target.status or 'not queued'}: only a target being"
            " acquired or queued can be skipped",
        )
    await act.commit()
    await publish(bus, m.SkipTarget(run_id=run.id, target_id=target.id, requested_by=user.username))
    return run_view(run)


@router.post("/skip-square", status_code=202)
async def skip_square(
    session_id: uuid.UUID,
    body: SkipRequest,
    user: Operator,
    db: DbDep,
    bus: BusDep,
    act: AuditDep,
) -> RunView:
    """Skip the rest of a square (``target_id``: the square, or one of its holes): the square
    if still queued or being imaged, its queued holes, and the hole being exposed, each at
    the run's next safe point."""
    session = await session_or_404(db, session_id)
    run = await live_run_or_409(db, session, "skip a square")
    act.run_id = run.id
    target = await _target(db, session, run, body.target_id)
    square_id = target.parent_id if target.kind == "hole" else target.id
    act.target = str(square_id)
    left = await db.scalar(
        select(Target.id)
        .where(
            Target.session_id == session.id,
            or_(Target.id == square_id, Target.parent_id == square_id),
            Target.status.in_(LEFT),
        )
        .limit(1)
    )
    if left is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"nothing of square {square_id.hex[:6]} is being acquired or queued",
        )
    await act.commit()
    await publish(bus, m.SkipSquare(run_id=run.id, square_id=square_id, requested_by=user.username))
    return run_view(run)
