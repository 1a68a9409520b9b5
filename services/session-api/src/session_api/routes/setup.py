"""Setting sessions up from the browser: edit, copy, archive (creating is in ``sessions``).

A session's grids change only before its first start (after it, runs have taken data on
them: copy the session for new grids); its name, plan and pause setting whenever no run is
live (the plan is what the next run does). Archiving hides a session from the default list
and refuses to start it; nothing is ever deleted. Each change commits with its audit row;
refusals are audited by the app's handlers.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import delete, func, select

from proto.api import SessionCopy, SessionEdit, SessionView
from session_api.audit import Audit, AuditDep
from session_api.auth import CurrentUser, Operator
from session_api.cassette import cassette, new_cassette
from session_api.db.models import Grid, Run, Session
from session_api.deps import BusDep, DbDep
from session_api.lookup import live_run_of, session_or_404
from session_api.routes.control import announce
from session_api.views import session_view

router = APIRouter(prefix="/api/sessions/{session_id}", tags=["sessions"])


async def _not_live(db: DbDep, session: Session, doing: str) -> None:
    run = await live_run_of(db, session)
    if run is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{session.name}: run {run.number} is {run.state}; stop it before {doing}",
        )


async def _runs(db: DbDep, session: Session) -> int:
    return int(await db.scalar(select(func.count()).where(Run.session_id == session.id)) or 0)


@router.patch("")
async def edit_session(
    session_id: uuid.UUID,
    body: SessionEdit,
    user: Operator,
    db: DbDep,
    bus: BusDep,
    act: AuditDep,
) -> SessionView:
    """Change a session: grids (with positions) before its first start; name, plan and the
    pause setting while no run is live. 409 for an archived session."""
    session = await session_or_404(db, session_id)
    if session.archived:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{session.name} is archived; unarchive it to change it"
        )
    await _not_live(db, session, "changing the session")
    changed = [k for k in body.model_fields_set if getattr(body, k) is not None]
    if {"grids", "positions"} & set(changed):
        await _replace_grids(db, session, body)
    if body.name is not None:
        session.name = body.name
    if body.pause_between_grids is not None:
        session.pause_between_grids = body.pause_between_grids
    if "plan" in body.model_fields_set:
        session.plan = body.plan.model_dump() if body.plan else None
        changed = sorted({*changed, "plan"})
    await act.commit(detail=f"changed: {', '.join(sorted(changed)) or 'nothing'}")
    await announce(bus, session, None, "session edited", user)
    return await session_view(db, session)


async def _replace_grids(db: DbDep, session: Session, body: SessionEdit) -> None:
    runs = await _runs(db, session)
    if runs:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the grids of {session.name} cannot change: {runs} run"
            f"{'' if runs == 1 else 's'} took data on them; copy the session for new grids",
        )
    current = (
        await db.scalars(select(Grid).where(Grid.session_id == session.id).order_by(Grid.position))
    ).all()
    names = body.grids if body.grids is not None else [g.name for g in current]
    slots = cassette(names, body.positions)
    await db.execute(delete(Grid).where(Grid.session_id == session.id))
    for position, name in slots:
        db.add(Grid(session_id=session.id, name=name, position=position))


@router.post("/copy", status_code=201)
async def copy_session(
    session_id: uuid.UUID, body: SessionCopy, user: Operator, db: DbDep, act: AuditDep
) -> SessionView:
    """A new session with this one's plan and pause setting, on its microscope unless another
    is given, with new grids (an archived session can be copied). Audited on the copy."""
    source = await session_or_404(db, session_id)
    microscope = body.microscope_id or source.microscope_id
    slots = await new_cassette(db, microscope, body.grids, body.positions)
    copy = Session(
        id=uuid.uuid4(),
        name=body.name,
        microscope_id=microscope,
        created_by=user.username,
        pause_between_grids=source.pause_between_grids,
        plan=dict(source.plan) if source.plan else None,
    )
    db.add(copy)
    await db.flush()  # the session row before its grids
    for position, name in slots:
        db.add(Grid(session_id=copy.id, name=name, position=position))
    await act.commit(session_id=copy.id, target=str(source.id), detail=f"copy of {source.name}")
    return await session_view(db, copy)


async def _archive(
    session_id: uuid.UUID,
    archived: bool,
    user: CurrentUser,
    db: DbDep,
    bus: BusDep,
    act: Audit,
) -> SessionView:
    session = await session_or_404(db, session_id)
    if archived:
        await _not_live(db, session, "archiving the session")
    session.archived = archived
    await act.commit()
    await announce(bus, session, None, "archived" if archived else "unarchived", user)
    return await session_view(db, session)


@router.post("/archive")
async def archive(
    session_id: uuid.UUID, user: Operator, db: DbDep, bus: BusDep, act: AuditDep
) -> SessionView:
    """Hide the session from the default list and refuse to start it; its data is kept."""
    return await _archive(session_id, True, user, db, bus, act)


@router.post("/unarchive")
async def unarchive(
    session_id: uuid.UUID, user: Operator, db: DbDep, bus: BusDep, act: AuditDep
) -> SessionView:
    """Show the session in the default list again; it can be started."""
    return await _archive(session_id, False, user, db, bus, act)
