"""A session's log lines: pages in id order for the panels, and the whole log as text.

A page is read through an index that holds its filter (``db.models.LogLine``): the newest
errors of a session with a million lines cost what they cost with a thousand. The text download
is streamed in keyset batches, each on its own short transaction: constant memory, no long
snapshot, and the event loop is free between batches. Each batch waits its turn behind the
projection (``Projector.drain``), which shares the loop and the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto.api import LogLineView
from session_api.auth import Viewer
from session_api.db.models import LogLine, const
from session_api.deps import DbDep
from session_api.lookup import session_or_404
from session_api.paging import MAX_ID, bad_query, link_next

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

LEVELS = ("debug", "info", "warning", "error", "critical")
Level = Literal["debug", "info", "warning", "error", "critical"]
Panel = Literal["acquisition", "processing", "system"]
TEXT_BATCH = 500
"""Lines per statement of the text download (about 50 kB of text): formatting a batch holds
the event loop, which the projection shares, for about a millisecond."""


def _filtered(
    session_id: uuid.UUID,
    *,
    panel: Panel | None,
    level: Level | None,
    since: datetime | None,
) -> Select[Any]:
    query = select(*LogLine.__table__.c).where(LogLine.session_id == session_id)
    if since is not None:
        query = query.where(LogLine.sent_at >= since)
    if panel:
        query = query.where(LogLine.panel == panel)
    if level and level != "debug":  # a minimum: debug is every line
        # literal values, as the partial indexes' predicates are written (models.WARNING_UP)
        query = query.where(LogLine.level.in_([const(x) for x in LEVELS[LEVELS.index(level) :]]))
    return query


@router.get("/{session_id}/logs", response_model=None)
async def get_logs(
    session_id: uuid.UUID,
    request: Request,
    response: Response,
    user: Viewer,
    db: DbDep,
    panel: Panel | None = None,
    level: Annotated[Level | None, Query(description="a minimum level")] = None,
    after_id: int = Query(0, ge=0, le=MAX_ID, description="lines after this id (reading forward)"),
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="lines before this id (reading back)")
    ] = None,
    since: Annotated[datetime | None, Query(description="only lines sent at or after")] = None,
    tail: Annotated[int | None, Query(ge=1, le=5000, description="only the newest N")] = None,
    limit: int = Query(500, ge=1, le=5000),
    format: Literal["json", "text"] = "json",
) -> list[LogLineView] | StreamingResponse:
    """Log lines of the session in ascending id order. ``level`` is a minimum; ``after_id``
    and ``since`` are reconnect cursors; ``tail`` (or ``before_id``) reads the newest lines
    back from the end (or from ``before_id``), ``limit`` at a time; ``format=text`` is the whole
    log as a streamed download."""
    session = await session_or_404(db, session_id)
    if since is not None and since.tzinfo is None:
        raise bad_query("since", "give a time zone (e.g. Z)")
    query = _filtered(session.id, panel=panel, level=level, since=since)
    if after_id:
        query = query.where(LogLine.id > after_id)
    if format == "text":
        name = f"{session.name}-{panel or 'all'}.log".replace(" ", "_")
        return StreamingResponse(
            _text(request.app.state.sessionmaker, query, request.app.state.projector.drain),
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if tail is not None or before_id is not None:
        size = min(tail or limit, limit)
        if before_id is not None:
            query = query.where(LogLine.id < before_id)
        newest = query.order_by(LogLine.id.desc()).limit(size + 1)
        found = list((await db.execute(newest)).all())
        rows = list(reversed(found[:size]))
        if len(found) > size:
            link_next(request, response, before_id=rows[0].id)
    else:
        rows = list((await db.execute(query.order_by(LogLine.id).limit(limit))).all())
        if len(rows) == limit:
            link_next(request, response, after_id=rows[-1].id)
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


async def _text(
    sessions: async_sessionmaker[AsyncSession],
    query: Select[Any],
    turn: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The lines of ``query`` as text, ``TEXT_BATCH`` at a time by id (keyset); ``turn`` is
    awaited before each batch (the projection's turn first)."""
    cols = (LogLine.id, LogLine.sent_at, LogLine.level, LogLine.service, LogLine.text)
    last = 0
    while True:
        await turn()
        async with sessions() as db:
            batch = (
                await db.execute(
                    query.with_only_columns(*cols)
                    .where(LogLine.id > last)
                    .order_by(LogLine.id)
                    .limit(TEXT_BATCH)
                )
            ).all()
        if not batch:
            return
        last = batch[-1].id
        yield "".join(
            f"{r.sent_at.isoformat()} {r.level.upper():8} {r.service}: {r.text}\n" for r in batch
        ).encode()
        if len(batch) < TEXT_BATCH:
            return
        await asyncio.sleep(0)  # the next batch after whatever else waits for the loop
