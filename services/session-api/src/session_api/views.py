"""From database rows to the HTTP models of ``proto.api``."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from proto import api
from proto.messages.disk import VolumeStatus
from proto.messages.lease import LeaseHolder
from proto.states import RunState
from session_api.db.models import (
    Exposure,
    Grid,
    Image,
    Microscope,
    Run,
    Session,
    Target,
    const,
)
from session_api.db.types import utcnow


def run_view(run: Run) -> api.RunView:
    age = (utcnow() - run.heartbeat_at).total_seconds() if run.heartbeat_at else None
    return api.RunView(
        id=run.id,
        session_id=run.session_id,
        microscope_id=run.microscope_id,
        number=run.number,
        state=RunState(run.state),
        exit_reason=run.exit_reason,
        detail=run.detail,
        host=run.host,
        pid=run.pid,
        started_at=run.started_at,
        ended_at=run.ended_at,
        heartbeat_at=run.heartbeat_at,
        heartbeat_age_s=None if age is None else round(age, 1),
        requested_by=run.requested_by,
        pause_between_grids=run.pause_between_grids,
        stop_requested=run.stop_requested,
        decision=api.DecisionView.model_validate(run.decision) if run.decision else None,
        current_grid=run.current_grid,
        exposures=run.exposures,
        exposures_failed=run.exposures_failed or 0,
        acknowledged_by=run.acknowledged_by,
        acknowledged_at=run.acknowledged_at,
    )


def holder_view(raw: dict[str, Any] | None) -> api.LeaseHolderView | None:
    if not raw:
        return None
    return api.LeaseHolderView.model_validate(LeaseHolder.model_validate(raw).model_dump())


def volume_views(m: Microscope) -> list[api.VolumeView]:
    views = []
    for raw in m.volumes or []:
        v = VolumeStatus.model_validate(raw)
        hours = v.free_bytes / m.bytes_per_hour if m.bytes_per_hour > 0 else None
        views.append(
            api.VolumeView(
                name=v.name,
                path=v.path,
                total_bytes=v.total_bytes,
                free_bytes=v.free_bytes,
                used_fraction=round(v.used_fraction, 4),
                level=v.level,
                hours_left=None if hours is None else round(hours, 1),
            )
        )
    return views


async def latest_run(db: AsyncSession, session_id: uuid.UUID) -> Run | None:
    return await db.scalar(
        select(Run).where(Run.session_id == session_id).order_by(Run.number.desc()).limit(1)
    )


async def live_run_on(db: AsyncSession, microscope_id: str) -> Run | None:
    return await db.scalar(
        select(Run)
        .where(Run.microscope_id == microscope_id, Run.state != const(RunState.ENDED.value))
        .order_by(Run.started_at.desc())
        .limit(1)
    )


LatestRun = aliased(Run, name="latest_run")
"""A session's newest run (``Session.latest_run_id``), joined into the statement that reads
the session: a page of sessions costs one index probe per row, never a scan of the runs."""


SessionRow = tuple[Session, Run | None, int]


def session_rows(query: Select[Any]) -> Select[Any]:
    """``query`` (of sessions) with each one's newest run and its runs' exposure total, read
    in the same statement (the total through ``ix_runs_session_number``)."""
    every = aliased(Run, name="every_run")
    total = (
        select(func.coalesce(func.sum(every.exposures), 0))
        .where(every.session_id == Session.id)
        .correlate(Session)
        .scalar_subquery()
    )
    return query.outerjoin(LatestRun, LatestRun.id == Session.latest_run_id).add_columns(
        LatestRun, total
    )


async def session_view(db: AsyncSession, s: Session) -> api.SessionView:
    row = (await db.execute(session_rows(select(Session).where(Session.id == s.id)))).one()
    return (await session_views(db, [(row[0], row[1], row[2])]))[0]


async def session_views(db: AsyncSession, rows: Sequence[SessionRow]) -> list[api.SessionView]:
    """The views of sessions read with :func:`session_rows`, in two more statements however
    many there are: their grids and their microscopes, each read for all of them."""
    if not rows:
        return []
    ids = [s.id for s, _run, _total in rows]
    grids: dict[uuid.UUID, list[Grid]] = defaultdict(list)
    for g in (
        await db.scalars(
            select(Grid).where(Grid.session_id.in_(ids)).order_by(Grid.session_id, Grid.position)
        )
    ).all():
        grids[g.session_id].append(g)
    scopes = {
        m.id: m
        for m in (
            await db.scalars(
                select(Microscope).where(Microscope.id.in_({s.microscope_id for s, _r, _t in rows}))
            )
        ).all()
    }
    return [
        _session_view(s, grids[s.id], run, scopes.get(s.microscope_id), int(total or 0))
        for s, run, total in rows
    ]


def _session_view(
    s: Session, grids: list[Grid], run: Run | None, microscope: Microscope | None, exposures: int
) -> api.SessionView:
    holder = holder_view(microscope.lease_holder if microscope else None)
    lock = holder if holder and holder.session_id != s.id else None
    if lock is None and holder and run and holder.run_id != run.id and run.state != "ended":
        lock = holder
    return api.SessionView(
        id=s.id,
        name=s.name,
        microscope_id=s.microscope_id,
        microscope_name=microscope.name if microscope else s.microscope_id,
        created_at=s.created_at,
        created_by=s.created_by,
        pause_between_grids=run.pause_between_grids
        if run and run.state != "ended"
        else s.pause_between_grids,
        grids=[
            api.GridView(
                id=g.id,
                name=g.name,
                position=g.position,
                status=g.status,
                atlas_id=g.atlas_id,
            )
            for g in grids
        ],
        run=run_view(run) if run else None,
        lock_holder=lock,
        plan=plan_of(s),
        archived=bool(s.archived),
        exposures=exposures,
    )


def plan_of(s: Session) -> api.ScreeningPlan | None:
    """The session's stored plan (a typed blob: written with ``model_dump``)."""
    return api.ScreeningPlan.model_validate(s.plan) if s.plan else None


async def microscope_view(db: AsyncSession, m: Microscope) -> api.MicroscopeView:
    live = run = await live_run_on(db, m.id)
    if run is None:
        run = await db.scalar(
            select(Run).where(Run.microscope_id == m.id).order_by(Run.started_at.desc()).limit(1)
        )
    session = await db.get(Session, run.session_id) if run else None
    rate = await exposures_per_hour(db, m.id, live=live)
    backlog = 0
    if run is not None:
        backlog = int(
            await db.scalar(
                select(func.count())
                .select_from(Exposure)
                .where(Exposure.run_id == run.id, Exposure.status == const("acquired"))
            )
            or 0
        )
    volumes = volume_views(m)
    alerts = [
        f"disk {v.name} {v.level}: {100 * (1 - v.used_fraction):.0f}% free"
        for v in volumes
        if v.level != "ok"
    ]
    view = run_view(run) if run else None
    if view and view.state != RunState.ENDED:
        if (view.heartbeat_age_s or 0) > 10:
            alerts.append(f"heartbeat {view.heartbeat_age_s:.0f} s old")
        if view.exposures_failed:
            alerts.append(
                f"processing failed on {view.exposures_failed} of {view.exposures} exposures"
            )
    return api.MicroscopeView(
        id=m.id,
        name=m.name,
        lease_holder=holder_view(m.lease_holder),
        session_id=session.id if session else None,
        session_name=session.name if session else None,
        run=view,
        current_grid=run.current_grid if run else None,
        exposures_per_hour=rate,
        backlog=backlog,
        volumes=volumes,
        alerts=alerts,
    )


RATE_MIN_S = 60.0
"""The shortest span a rate is taken over: a run's first exposure, seconds after its start,
is not thousands per hour."""


LOOK_UP: Any = object()


async def exposures_per_hour(
    db: AsyncSession, microscope_id: str, minutes: float = 15, *, live: Run | None = LOOK_UP
) -> float:
    """The live run's exposures per hour over the last ``minutes`` (since it started, when
    that is later: its first minutes are not diluted by idle time before it); 0 with no live
    run, as an idle scope takes none, whatever its last run took a minute ago. ``live``: the
    microscope's live run when the caller has read it already."""
    run = await live_run_on(db, microscope_id) if live is LOOK_UP else live
    if run is None:
        return 0.0
    now = utcnow()
    since = max(now - timedelta(minutes=minutes), run.started_at)
    n = await db.scalar(
        select(func.count())
        .select_from(Exposure)
        .where(Exposure.run_id == run.id, Exposure.acquired_at >= since)
    )
    hours = max((now - since).total_seconds(), RATE_MIN_S) / 3600
    return round(float(n or 0) / hours, 1)


def image_view(image: Image) -> api.ImageView:
    return api.ImageView(
        id=image.id,
        url=f"/api/images/{image.id}.png",
        width=image.width,
        height=image.height,
        pixel_size_a=image.pixel_size_a,
    )


def placement(t: Target) -> dict[str, Any]:
    """Where a stored square or hole is and what processing made of it: the fields its view
    and its message (``proto.messages.Target``) share."""
    return {
        "grid_id": t.grid_id,
        "parent_id": t.parent_id,
        "y": t.y,
        "x": t.x,
        "size_px": t.size_px,
        "cls": t.cls,
        "score": t.score,
        "ice_nm": t.ice_nm,
    }


def target_view(t: Target) -> api.TargetView:
    return api.TargetView(
        id=t.id, kind=t.kind, status=t.status, image_id=t.image_id, **placement(t)
    )


def exposure_view(e: Exposure | Row[Any]) -> api.ExposureView:
    """From an ORM row or a Core row of ``exposures`` (pages read Core rows: building a
    thousand ORM objects cost more than the query)."""
    astig = (
        abs(e.defocus1_a - e.defocus2_a)
        if e.defocus1_a is not None and e.defocus2_a is not None
        else None
    )
    return api.ExposureView(
        run_id=e.run_id,
        id=e.id,
        grid_id=e.grid_id,
        hole_id=e.hole_id,
        acquired_at=e.acquired_at,
        status=e.status,
        error=e.error,
        defocus1_a=e.defocus1_a,
        defocus2_a=e.defocus2_a,
        astigmatism_a=astig,
        astig_angle_deg=e.astig_angle_deg,
        ctf_fit_resolution_a=e.ctf_fit_resolution_a,
        ctf_low_confidence=e.ctf_low_confidence,
        drift_total_a=e.drift_total_a,
        ice_nm=e.ice_nm,
        thumbnail_url=f"/api/images/{e.thumbnail_id}.png" if e.thumbnail_id else None,
        spectrum_url=f"/api/images/{e.spectrum_id}.png" if e.spectrum_id else None,
    )
