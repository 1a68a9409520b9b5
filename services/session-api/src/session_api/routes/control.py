"""Run control: start, stop, pause between grids, decisions, targets, and the staff overrides.

Each route checks its role on the server, turns the request into a bus command and records
the action and its outcome in the audit log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy import func, select, update

from proto import messages as m
from proto.api import (
    DecisionRequest,
    PauseRequest,
    QueueView,
    RunView,
    SessionView,
    StartResponse,
    TargetsRequest,
)
from proto.errors import BusUnavailable
from proto.states import ExitReason, RunState
from session_api.audit import audit
from session_api.auth import CurrentUser, Operator, Staff
from session_api.db.models import Grid, Run, Session, Target
from session_api.deps import BusDep, DbDep, LeasesDep, SettingsDep
from session_api.grids import grid_specs, target_message
from session_api.lookup import live_run_of, live_run_or_409, session_or_404
from session_api.projection import apply_state
from session_api.reconcile import is_alive
from session_api.routes.sessions import queue_view
from session_api.views import run_view, session_view

router = APIRouter(prefix="/api/sessions/{session_id}", tags=["control"])
log = logging.getLogger(__name__)


class Audited:
    """Audits the action of one request: ``ok`` unless an HTTP error leaves the block."""

    def __init__(self, request: Request, user: CurrentUser, action: str, session_id: uuid.UUID):
        self.request, self.user, self.action, self.session_id = request, user, action, session_id
        self.run_id: uuid.UUID | None = None
        self.target: str | None = None
        self.detail: str | None = None

    async def __aenter__(self) -> Audited:
        return self

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, HTTPException):
            outcome, detail = f"refused {exc.status_code}", str(exc.detail)
        elif exc is not None:
            outcome, detail = "failed", repr(exc)
        else:
            outcome, detail = "ok", self.detail or ""
        await audit(
            self.request,
            self.user.username,
            self.action,
            outcome,
            session_id=self.session_id,
            run_id=self.run_id,
            target=self.target,
            detail=detail,
        )


async def publish(bus: BusDep, message: m.Message) -> None:
    try:
        await bus.publish(message)
    except BusUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


async def announce(
    bus: BusDep, session: Session, run_id: uuid.UUID | None, change: str, user: CurrentUser
) -> None:
    """Tell every page of the session about a change committed here that no other event
    carries (``SessionChanged``). The control has succeeded either way: a bus that is down now
    costs the other pages only this live update, not the caller its answer."""
    try:
        await bus.publish(
            m.SessionChanged(
                run_id=run_id,
                session_id=session.id,
                microscope_id=session.microscope_id,
                change=change,
                requested_by=user.username,
            )
        )
    except BusUnavailable:
        log.warning("could not announce %r on session %s", change, session.id)


async def begin_run(
    db: DbDep, bus: BusDep, session: Session, user: CurrentUser, note: str | None = None
) -> Run:
    """Create a new run row, claim the session for it, and send ``run.start``."""
    every = (
        await db.scalars(select(Grid).where(Grid.session_id == session.id).order_by(Grid.position))
    ).all()
    grids = [g for g in every if g.status != "done"]
    if not grids:
        raise HTTPException(status.HTTP_409_CONFLICT, f"every grid of {session.name} is done")
    specs = await grid_specs(db, grids)
    done = tuple(g.name for g in every if g.status == "done")
    run_id, name, session_id = uuid.uuid4(), session.name, session.id
    claimed = await db.execute(
        update(Session)
        .where(Session.id == session.id, Session.live_run_id.is_(None))
        .values(live_run_id=run_id)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await db.rollback()  # expires ``session``: read nothing lazily from it after this
        live = await db.scalar(
            select(Run).join(Session, Session.live_run_id == Run.id).where(Session.id == session_id)
        )
        what = f"run {live.id} is {live.state}" if live else "another start came first"
        raise HTTPException(status.HTTP_409_CONFLICT, f"{name}: {what}; stop it first")
    number = (
        await db.scalar(select(func.max(Run.number)).where(Run.session_id == session.id))
    ) or 0
    run = Run(
        id=run_id,
        session_id=session.id,
        microscope_id=session.microscope_id,
        number=number + 1,
        state=RunState.STARTING.value,
        requested_by=user.username,
        pause_between_grids=session.pause_between_grids,
        detail=note,
    )
    db.add(run)
    await db.commit()
    start = m.StartRun(
        run_id=run.id,
        session_id=session.id,
        session_name=session.name,
        microscope_id=session.microscope_id,
        grids=specs,
        grids_done=done,
        pause_between_grids=session.pause_between_grids,
        requested_by=user.username,
    )
    try:
        await bus.publish(start)
    except BusUnavailable as exc:
        await apply_state(
            db, run, RunState.ENDED, ExitReason.FAILED, f"could not send start: {exc}"
        )
        await db.commit()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    await announce(bus, session, run.id, f"run {run.number} starting", user)
    return run


@router.post("/start", status_code=202)
async def start(
    session_id: uuid.UUID, request: Request, user: Operator, db: DbDep, bus: BusDep
) -> StartResponse:
    """Start a new run (202 with its id); 409 naming the live run if there is one."""
    async with Audited(request, user, "start", session_id) as act:
        session = await session_or_404(db, session_id)
        run = await begin_run(db, bus, session, user)
        act.run_id = run.id
        return StartResponse(run_id=run.id, session_id=session.id)


@router.post("/stop", status_code=202)
async def stop(
    session_id: uuid.UUID, request: Request, user: Operator, db: DbDep, bus: BusDep
) -> RunView:
    """Soft stop: the current exposure finishes; the run stops when it next asks its queue."""
    async with Audited(request, user, "stop", session_id) as act:
        session = await session_or_404(db, session_id)
        run = await live_run_or_409(db, session, "stop")
        act.run_id = run.id
        run.stop_requested = True
        await db.commit()
        await publish(bus, m.StopRun(run_id=run.id, requested_by=user.username))
        await announce(bus, session, run.id, f"stop requested for run {run.number}", user)
        return run_view(run)


@router.put("/pause-between-grids")
async def pause_between_grids(
    session_id: uuid.UUID,
    body: PauseRequest,
    request: Request,
    user: Operator,
    db: DbDep,
    bus: BusDep,
) -> SessionView:
    """Turn the prompt on or off for the live run, and as this session's default."""
    async with Audited(request, user, "pause-between-grids", session_id) as act:
        session = await session_or_404(db, session_id)
        session.pause_between_grids = body.enabled
        act.detail = f"enabled={body.enabled}"
        run = await live_run_of(db, session)
        if run is not None:
            act.run_id = run.id
            run.pause_between_grids = body.enabled
        await db.commit()
        if run is not None:
            await publish(
                bus,
                m.SetPauseBetweenGrids(
                    run_id=run.id, enabled=body.enabled, requested_by=user.username
                ),
            )
        change = f"pause between grids {'on' if body.enabled else 'off'}"
        await announce(bus, session, run.id if run else None, change, user)
        return await session_view(db, session)


@router.post("/decision", status_code=202)
async def decision(
    session_id: uuid.UUID,
    body: DecisionRequest,
    request: Request,
    user: Operator,
    db: DbDep,
    bus: BusDep,
) -> RunView:
    """Answer the pause-between-grids prompt: ``continue_grid`` or ``next_grid``."""
    async with Audited(request, user, "decision", session_id) as act:
        session = await session_or_404(db, session_id)
        run = await live_run_or_409(db, session, "decide")
        act.run_id, act.detail = run.id, body.choice
        if run.state != RunState.AWAITING_DECISION:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"run {run.id} is {run.state}, not awaiting a decision"
            )
        await publish(
            bus, m.DecideRun(run_id=run.id, choice=body.choice, requested_by=user.username)
        )
        return run_view(run)


async def _targets(
    session_id: uuid.UUID,
    body: TargetsRequest,
    request: Request,
    user: CurrentUser,
    db: DbDep,
    bus: BusDep,
    add: bool,
) -> QueueView:
    async with Audited(
        request, user, "add-targets" if add else "remove-targets", session_id
    ) as act:
        session = await session_or_404(db, session_id)
        wanted = set(body.target_ids)
        rows = (
            await db.scalars(
                select(Target).where(Target.session_id == session.id, Target.id.in_(wanted))
            )
        ).all()
        if missing := wanted - {t.id for t in rows}:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"no target {', '.join(sorted(map(str, missing)))} in session {session.name}",
            )
        run = await live_run_or_409(db, session, "change the queue")
        act.run_id, act.target = run.id, ",".join(sorted(map(str, wanted)))
        if add:
            await _on_the_grid_screened(db, run, rows)
        ids = tuple(body.target_ids)
        message: m.Message = (
            m.AddTargets(
                run_id=run.id,
                target_ids=ids,
                requested_by=user.username,
                targets=tuple(target_message(t) for t in rows),
            )
            if add
            else m.RemoveTargets(run_id=run.id, target_ids=ids, requested_by=user.username)
        )
        await publish(bus, message)
        return await queue_view(db, session)


async def _on_the_grid_screened(db: DbDep, run: Run, targets: Sequence[Target]) -> None:
    """A run images targets of the grid it is screening; it cannot go back to a grid, and
    queues a later grid's own targets when it gets there: anything else is refused here
    (the run would only log that it ignored them)."""
    rows = await db.execute(
        select(Grid.id, Grid.name).where(Grid.id.in_({t.grid_id for t in targets}))
    )
    names: dict[uuid.UUID, str] = dict(rows.all())
    elsewhere = sorted({names.get(t.grid_id, "?") for t in targets} - {run.current_grid})
    if elsewhere:
        where = f"grid {run.current_grid}" if run.current_grid else "no grid yet"
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run.number} is screening {where}: targets on grid {', '.join(elsewhere)}"
            " cannot be queued now (only the grid being screened takes new targets)",
        )


@router.post("/targets", status_code=202)
async def add_targets(
    session_id: uuid.UUID,
    body: TargetsRequest,
    request: Request,
    user: Operator,
    db: DbDep,
    bus: BusDep,
) -> QueueView:
    """Queue squares or holes on the live run."""
    return await _targets(session_id, body, request, user, db, bus, add=True)


@router.delete("/targets", status_code=202)
async def remove_targets(
    session_id: uuid.UUID,
    body: TargetsRequest,
    request: Request,
    user: Operator,
    db: DbDep,
    bus: BusDep,
) -> QueueView:
    """Take squares or holes out of the live run's queue."""
    return await _targets(session_id, body, request, user, db, bus, add=False)


@router.post("/force-start", status_code=202)
async def force_start(
    session_id: uuid.UUID,
    request: Request,
    user: Staff,
    db: DbDep,
    bus: BusDep,
    leases: LeasesDep,
    settings: SettingsDep,
) -> StartResponse:
    """Reconcile the recorded run against its lease and heartbeat, end a dead one ``lost``,
    and start a new run. A run that is really alive is left alone (409)."""
    async with Audited(request, user, "force-start", session_id) as act:
        session = await session_or_404(db, session_id)
        recorded = await live_run_of(db, session)
        note = None
        if recorded is not None:
            alive, why = await is_alive(recorded, leases, settings.heartbeat_timeout_s)
            if alive:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"run {recorded.id} is alive ({why}); stop or force-kill it instead",
                )
            await apply_state(db, recorded, RunState.ENDED, ExitReason.LOST, f"force start: {why}")
            await db.commit()
            note = f"force start after run {recorded.number} ended lost"
            await publish(
                bus,
                m.RunStateChanged(
                    run_id=recorded.id,
                    session_id=session.id,
                    microscope_id=session.microscope_id,
                    state=RunState.ENDED,
                    exit_reason=ExitReason.LOST,
                    detail=f"force start: {why}",
                    requested_by=user.username,
                ),
            )
        run = await begin_run(db, bus, session, user, note)
        act.run_id, act.detail = run.id, note
        return StartResponse(run_id=run.id, session_id=session.id)


@router.post("/kill", status_code=202)
async def kill(
    session_id: uuid.UUID, request: Request, user: Staff, db: DbDep, bus: BusDep
) -> RunView:
    """SIGKILL the run's whole process group now; the run ends ``killed``."""
    async with Audited(request, user, "kill", session_id) as act:
        session = await session_or_404(db, session_id)
        run = await live_run_or_409(db, session, "kill")
        act.run_id = run.id
        await publish(bus, m.KillRun(run_id=run.id, requested_by=user.username))
        return run_view(run)
