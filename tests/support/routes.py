"""Every read the pages make of session-api, and the pages themselves, aimed at a seeded
facility (``support.facility``): the EXPLAIN test runs each once, ``benchmarks/scale.py``
times each. Cursors are real ones: ids read from the middle of the busy session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from session_api.db.models import AuditEntry, Exposure, Grid, Image, LogLine, Session, Target
from support.facility import Facility


@dataclass(frozen=True)
class Call:
    name: str
    path: str
    role: str = "viewer"
    status: int = 200


@dataclass(frozen=True)
class Aims:
    """Rows in the middle of the busy session and of the facility, for cursors and details."""

    grid: uuid.UUID
    """The busy session's grid being screened (about 300 squares on its atlas)."""
    square: uuid.UUID
    """An imaged square of the small session (its holes: as many at every size)."""
    small_grid: uuid.UUID
    image: uuid.UUID
    exposure: uuid.UUID
    log_id: int
    audit_id: int
    session: uuid.UUID
    """A session in the middle of the sessions list (a ``before`` cursor)."""
    scope: str


async def aims(sessions: async_sessionmaker[AsyncSession], fac: Facility) -> Aims:
    busy = fac.busy
    async with sessions() as db:
        grid = await db.scalar(
            select(Grid).where(Grid.session_id == busy, Grid.status == "screening").limit(1)
        )
        assert grid is not None and grid.atlas_id is not None
        small_grid = await db.scalar(
            select(Grid.id).where(Grid.session_id == fac.small, Grid.position == 1)
        )
        square = await db.scalar(
            select(Target.id).where(
                Target.grid_id == small_grid,
                Target.kind == "square",
                Target.image_id.is_not(None),
            )
        )
        image = await db.scalar(select(Image.id).where(Image.id == grid.atlas_id))
        n = await db.scalar(select(func.count()).where(Exposure.session_id == busy))
        exposure = await db.scalar(
            select(Exposure.id)
            .where(Exposure.session_id == busy)
            .order_by(Exposure.acquired_at, Exposure.id)
            .offset((n or 1) // 2)
            .limit(1)
        )
        span = await db.execute(
            select(func.min(LogLine.id), func.max(LogLine.id)).where(LogLine.session_id == busy)
        )
        lo, hi = span.one()
        mid = await db.scalar(
            select(Session.id).order_by(Session.created_at).offset(len(fac.sessions) // 2).limit(1)
        )
        audit = await db.scalar(select(func.max(AuditEntry.id)))
    assert square and small_grid and image and exposure and lo and hi and mid and audit
    return Aims(
        grid.id,
        square,
        small_grid,
        image,
        exposure,
        (lo + hi) // 2,
        audit // 2,
        mid,
        fac.scopes[2],
    )


def api_reads(fac: Facility, a: Aims) -> list[Call]:
    """Every GET route of session-api, as the pages (and scripts) call them."""
    b, s = f"/api/sessions/{fac.busy}", f"/api/sessions/{fac.small}"
    week = (fac.now - timedelta(days=20)).date().isoformat()
    until = (fac.now - timedelta(days=17)).date().isoformat()
    recent = (fac.now - timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    return [
        Call("GET /api/auth/me", "/api/auth/me"),
        Call("GET /api/microscopes", "/api/microscopes"),
        Call("GET /api/sessions", "/api/sessions"),
        Call("GET /api/sessions ?before", f"/api/sessions?before={a.session}"),
        Call("GET /api/sessions ?state=running", "/api/sessions?state=running"),
        Call("GET /api/sessions ?state=idle", "/api/sessions?state=idle"),
        Call("GET /api/sessions ?archived=only", "/api/sessions?archived=only"),
        Call(
            "GET /api/sessions ?state=ended&scope",
            f"/api/sessions?state=ended&microscope_id={a.scope}",
        ),
        Call(
            "GET /api/sessions ?since&until",
            f"/api/sessions?since={week}T00:00:00Z&until={until}T00:00:00Z",
        ),
        Call("GET /api/sessions/{busy}", b),
        Call("GET /api/sessions/{small}", s),
        Call("GET /api/sessions/{busy}/queue", f"{b}/queue"),
        Call("GET /api/sessions/{busy}/runs", f"{b}/runs"),
        Call("GET /api/sessions/{busy}/exposures", f"{b}/exposures"),
        Call("GET /api/sessions/{busy}/exposures ?limit=1000", f"{b}/exposures?limit=1000"),
        Call("GET /api/sessions/{busy}/exposures ?before", f"{b}/exposures?before={a.exposure}"),
        Call("GET /api/sessions/{small}/exposures", f"{s}/exposures"),
        Call("GET /api/sessions/{busy}/exposures/series", f"{b}/exposures/series?limit=1000"),
        Call("GET /api/sessions/{busy}/logs ?tail=500", f"{b}/logs?tail=500"),
        Call("GET /api/sessions/{busy}/logs ?level=error&tail", f"{b}/logs?level=error&tail=500"),
        Call("GET /api/sessions/{busy}/logs ?level=warning", f"{b}/logs?level=warning"),
        Call("GET /api/sessions/{busy}/logs ?panel=system&tail", f"{b}/logs?panel=system&tail=500"),
        Call("GET /api/sessions/{busy}/logs ?since=60 s", f"{b}/logs?since={recent}"),
        Call("GET /api/sessions/{busy}/logs ?after_id", f"{b}/logs?after_id={a.log_id}"),
        Call("GET /api/sessions/{busy}/logs ?before_id", f"{b}/logs?before_id={a.log_id}&tail=500"),
        Call("GET /api/sessions/{small}/logs", f"{s}/logs"),
        Call("GET /api/sessions/{busy}/grids/{grid}", f"{b}/grids/{a.grid}"),
        Call("GET /api/sessions/{small}/grids/{grid}", f"{s}/grids/{a.small_grid}"),
        Call("GET /api/squares/{small square}", f"/api/squares/{a.square}"),
        Call("GET /api/images/{atlas}.png (not on disk)", f"/api/images/{a.image}.png", status=404),
        Call("GET /api/runs/{busy run}", f"/api/runs/{fac.busy_run}"),
        Call("GET /api/audit", "/api/audit", role="staff"),
        Call("GET /api/audit ?session_id", f"/api/audit?session_id={fac.busy}", role="staff"),
        Call("GET /api/audit ?before", f"/api/audit?before={a.audit_id}", role="staff"),
        Call("GET /api/ops", "/api/ops", role="staff"),
        Call("GET /metrics", "/metrics"),
    ]


def ui_pages(fac: Facility, a: Aims) -> list[Call]:
    """Every page of the ui (and the partials the pages fetch), as a browser asks for them."""
    b = f"/sessions/{fac.busy}"
    return [
        Call("ui /", "/"),
        Call("ui /sessions", "/sessions"),
        Call("ui /sessions ?state=running", "/sessions?state=running"),
        Call("ui /sessions ?archived=only", "/sessions?archived=only"),
        Call("ui /sessions ?microscope&state=ended", f"/sessions?microscope={a.scope}&state=ended"),
        Call("ui /sessions ?before", f"/sessions?before={a.session}"),
        Call("ui /sessions/{busy}", b),
        Call("ui /sessions/{busy}/browse", f"{b}/browse"),
        Call("ui /sessions/{busy}/browse ?before", f"{b}/browse?before={a.exposure}"),
        Call("ui /sessions/{small}/browse", f"/sessions/{fac.small}/browse"),
        Call("ui /sessions/{busy}/browse/news", f"{b}/browse/news?run={fac.busy_run}&seen=10"),
        Call("ui /operations", "/operations", role="staff"),
    ]
