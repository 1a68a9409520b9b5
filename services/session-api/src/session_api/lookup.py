"""Finding rows or answering 404 / 409 with words an operator can act on."""

from __future__ import annotations

import uuid

from fastapi import HTTPException, status
from sqlalchemy.ext.asyncio import AsyncSession

from proto.states import RunState
from session_api.db.models import Run, Session


async def session_or_404(db: AsyncSession, session_id: uuid.UUID) -> Session:
    row = await db.get(Session, session_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id}")
    return row


async def live_run_of(db: AsyncSession, session: Session) -> Run | None:
    if session.live_run_id is None:
        return None
    run = await db.get(Run, session.live_run_id)
    return run if run is not None and run.state != RunState.ENDED else None


async def live_run_or_409(db: AsyncSession, session: Session, action: str) -> Run:
    run = await live_run_of(db, session)
    if run is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"cannot {action}: session {session.name} has no live run"
        )
    return run
