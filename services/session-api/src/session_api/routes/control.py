"""Run control: start, stop, pause between grids, decisions, targets, and the staff overrides.

Each route checks its role on the server, records the action in the audit log in the same
transaction as the change it makes, commits, and only then publishes the bus command.
Refusals are audited by the app's handlers (``session_api.refusals``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from fastapi import APIRouter, HTTPException, status
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
from session_api.audit import Audit, AuditDep
from session_api.auth import CurrentUser, Operator, Staff
from session_api.db.models import Grid, Run, Session, Target
from session_api.deps import BusDep, DbDep, LeasesDep, SettingsDep
from session_api.grids import grid_specs, target_message
from session_api.lookup import live_run_of, live_run_or_409, session_or_404
from session_api.projection import apply_state
from session_api.reconcile import is_alive
from session_api.routes.sessions import queue_view
from session_api.views import plan_of, run_view, session_view

router = APIRouter(prefix="/api/sessions/{session_id}", tags=["control"])
log = logging.getLogger(__name__)


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
    db: DbDep,
    bus: BusDep,
    session: Session,
    user: CurrentUser,
    act: Audit,
    note: str | None = None,
    *,
    first: Sequence[m.Message] = (),
) -> Run:
    """Create a new run row, claim the session for it, audit (``act``) in that transaction,
    commit, and send ``run.start``."""
    if session.archived:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{session.name} is archived; unarchive it to start it"
        )
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
        .values(live_run_id=run_id, latest_run_id=run_id)
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
    await act.commit(run_id=run.id, detail=note)
    for message in first:  # informational (the database has it already): never fatal
        try:
            await bus.publish(message)
        except BusUnavailable:
            log.warning("could not announce %s of run %s", message.routing_key, message.run_id)
    start = m.StartRun(
        run_id=run.id,
        session_id=session.id,
        session_name=session.name,
        microscope_id=session.microscope_id,
        grids=specs,
        grids_done=done,
        pause_between_grids=session.pause_between_grids,
        requested_by=user.username,
        plan=plan_of(session),
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
    session_id: uuid.UUID, user: Operator, db: DbDep, bus: BusDep, act: AuditDep
) -> StartResponse:
    """Start a new run (202 with its id); 409 naming the live run if there is one."""
    session = await session_or_404(db, session_id)
    run = await begin_run(db, bus, session, user, act)
    return StartResponse(run_id=run.id, session_id=session.id)


@router.post("/stop", status_code=202)
async def stop(
    session_id: uuid.UUID, user: Operator, db: DbDep, bus: BusDep, act: AuditDep
) -> RunView:
    """Soft stop: the current exposure finishes; the run stops when it next asks its queue."""
    session = await session_or_404(db, session_id)
    run = await live_run_or_409(db, session, "stop")
    run.stop_requested = True
    await act.commit(run_id=run.id)
    await publish(bus, m.StopRun(run_id=run.id, requested_by=user.username))
    await announce(bus, session, run.id, f"stop requested for run {run.number}", user)
    return run_view(run)


@router.put("/pause-between-grids")
async def pause_between_grids(
    session_id: uuid.UUID,
    body: PauseRequest,
    user: Operator,
    db: DbDep,
    bus: BusDep,
    act: AuditDep,
) -> SessionView:
    """Turn the prompt on or off for the live run, and as this session's default."""
    session = await session_or_404(db, session_id)
    session.pause_between_grids = body.enabled
    run = await live_run_of(db, session)
    if run is not None:
        run.pause_between_grids = body.enabled
    await act.commit(run_id=run.id if run else None, detail=f"enabled={body.enabled}")
    if run is not None:
        await publish(
            bus,
            m.SetPauseBetweenGrids(run_id=run.id, enabled=body.enabled, requested_by=user.username),
        )
    change = f"pause between grids {'on' if body.enabled else 'off'}"
    await announce(bus, session, run.id if run else None, change, user)
    return await session_view(db, session)


@router.post("/decision", status_code=202)
async def decision(
    session_id: uuid.UUID,
    body: DecisionRequest,
    user: Operator,
    db: DbDep,
    bus: BusDep,
    act: AuditDep,
) -> RunView:
    """Answer the pause-between-grids prompt: ``continue_grid`` or ``next_grid``."""
    session = await session_or_404(db, session_id)
    run = await live_run_or_409(db, session, "decide")
    act.run_id, act.detail = run.id, body.choice
    if run.state != RunState.AWAITING_DECISION:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"run {run.id} is {run.state}, not awaiting a decision"
        )
    await act.commit()
    await publish(bus, m.DecideRun(run_id=run.id, choice=body.choice, requested_by=user.username))
    return run_view(run)


async def _targets(
    session_id: uuid.UUID,
    body: TargetsRequest,
    user: CurrentUser,
    db: DbDep,
    bus: BusDep,
    act: Audit,
    add: bool,
) -> QueueView:
    session = await session_or_404(db, session_id)
    wanted = set(body.target_ids)
    act.target = _target_words(wanted)
    act.detail = "targets: " + ",".join(sorted(map(str, wanted)))
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
    run = await live_run_of(db, session)
    if run is None:
        await _for_the_next_run(db, session, rows, add)
        await act.commit(detail=f"{act.detail}; no live run: for the next run")
        await announce(bus, session, None, "targets changed", user)
        return await queue_view(db, session)
    act.run_id = run.id
    if add:
        await _on_the_grid_screened(db, run, rows)
    await act.commit()
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


def _target_words(ids: set[uuid.UUID]) -> str:
    """The audit row's target: the id of one target, the count of several (listed in its
    detail: 8 ids overflowed the column on PostgreSQL)."""
    return str(next(iter(ids))) if len(ids) == 1 else f"{len(ids)} targets"


async def _for_the_next_run(
    db: DbDep, session: Session, targets: Sequence[Target], add: bool
) -> None:
    """With no live run, queueing marks targets ``queued`` for the session's next run, which
    goes on with them (``session_api.grids``): after an atlas-only run the operator chooses
    squares this way. A grid screened already is not taken up again by a run: refused."""
    if add:
        rows = await db.execute(
            select(Grid.name).where(
                Grid.id.in_({t.grid_id for t in targets}), Grid.status == "done"
            )
        )
        done = sorted(rows.scalars().all())
        if done:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"grid {', '.join(done)} of {session.name} is screened: a new run does not go"
                " back to it (copy the session to screen it again)",
            )
    for t in targets:
        if add and t.status not in ("acquiring", "done"):
            t.status = "queued"
        elif not add and t.status == "queued":
            t.status = "removed"


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
    user: Operator,
    db: DbDep,
    bus: BusDep,
    act: AuditDep,
) -> QueueView:
    """Queue squares or holes on the live run (with none: for the next run)."""
    return await _targets(session_id, body, user, db, bus, act, add=True)


@router.delete("/targets", status_code=202)
async def remove_targets(
    session_id: uuid.UUID,
    body: TargetsRequest,
    user: Operator,
    db: DbDep,
    bus: BusDep,
    act: AuditDep,
) -> QueueView:
    """Take squares or holes out of the live run's queue (with none: the next run's)."""
    return await _targets(session_id, body, user, db, bus, act, add=False)


@router.post("/force-start", status_code=202)
async def force_start(
    session_id: uuid.UUID,
    user: Staff,
    db: DbDep,
    bus: BusDep,
    leases: LeasesDep,
    settings: SettingsDep,
    act: AuditDep,
) -> StartResponse:
    """Reconcile the recorded run against its lease and heartbeat, end a dead one ``lost``,
    and start a new run. A run that is really alive is left alone (409). Ending the dead run,
    creating the new one and the audit row commit together."""
    session = await session_or_404(db, session_id)
    recorded = await live_run_of(db, session)
    note, first = None, []
    if recorded is not None:
        alive, why = await is_alive(recorded, leases, settings.heartbeat_timeout_s)
        if alive:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"run {recorded.id} is alive ({why}); stop or force-kill it instead",
            )
        await apply_state(db, recorded, RunState.ENDED, ExitReason.LOST, f"force start: {why}")
        await db.flush()
        note = f"force start after run {recorded.number} ended lost"
        first.append(
            m.RunStateChanged(
                run_id=recorded.id,
                session_id=session.id,
                microscope_id=session.microscope_id,
                state=RunState.ENDED,
                exit_reason=ExitReason.LOST,
                detail=f"force start: {why}",
                requested_by=user.username,
            )
        )
    run = await begin_run(db, bus, session, user, act, note, first=first)
    return StartResponse(run_id=run.id, session_id=session.id)


@router.post("/kill", status_code=202)
async def kill(
    session_id: uuid.UUID, user: Staff, db: DbDep, bus: BusDep, act: AuditDep
) -> RunView:
    """SIGKILL the run's whole process group now; the run ends ``killed``."""
    session = await session_or_404(db, session_id)
    run = await live_run_or_409(db, session, "kill")
    await act.commit(run_id=run.id)
    await publish(bus, m.KillRun(run_id=run.id, requested_by=user.username))
    return run_view(run)
