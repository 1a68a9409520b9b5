"""Events in, state out: session-api projects what the services report into the database.

One projector handles events one at a time (arrival order), inside one transaction each, and
remembers message ids so a redelivered event changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto import messages as m
from proto.states import RunState, can_move
from session_api.db.insert import insert_new
from session_api.db.models import (
    Exposure,
    Grid,
    Image,
    LogLine,
    Microscope,
    Processed,
    Run,
    Session,
    Target,
    Worker,
    const,
)
from session_api.db.types import utcnow

log = logging.getLogger(__name__)

WORKER_FORGET = timedelta(days=1)

Listener = Callable[[m.Message], Awaitable[None]]


class Projector:
    """Applies events to the database; ``listeners`` hear each event after it is committed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._lock = asyncio.Lock()
        self.listeners: list[Listener] = []
        self.beats: dict[str, datetime] = {}
        """When each worker instance sent its newest projected heartbeat."""
        self.handled = 0
        """Events and log records taken (projected, or known already): session-api's own
        heartbeat reports it, as the other services report their deliveries handled."""
        self._handlers: dict[type[m.Message], Callable[[AsyncSession, Any], Awaitable[None]]] = {
            m.MicroscopeReported: self._microscope,
            m.LeaseGranted: self._lease_granted,
            m.LeaseReleased: self._lease_gone,
            m.LeaseLost: self._lease_gone,
            m.RunStateChanged: self._state,
            m.RunHeartbeatSent: self._heartbeat,
            m.DecisionRequested: self._decision,
            m.PauseBetweenGridsChanged: self._pause,
            m.QueueUpdated: self._queue,
            m.GridLoaded: self._grid_loaded,
            m.GridFinished: self._grid_finished,
            m.AtlasAcquired: self._atlas,
            m.SquaresFound: self._squares,
            m.SquareAcquired: self._square_image,
            m.HolesFound: self._holes,
            m.ExposureAcquired: self._exposure,
            m.ExposureProcessed: self._processed,
            m.ImageFailed: self._failed,
            m.WorkerHeartbeat: self._worker,
        }

    async def event(self, message: m.Message) -> None:
        """Project one event (the handler of ``session-api.events``)."""
        handler = self._handlers.get(type(message))
        if handler is not None:
            async with self._lock, self._sessions() as db:
                if not isinstance(message, m.RunHeartbeatSent | m.WorkerHeartbeat):
                    if await db.get(Processed, message.message_id) is not None:
                        self.handled += 1
                        return
                    db.add(Processed(message_id=message.message_id))
                await handler(db, message)
                await db.commit()
            if isinstance(message, m.WorkerHeartbeat):
                self.beats[message.instance] = message.sent_at
        self.handled += 1
        for listener in self.listeners:
            await listener(message)

    async def drain(self) -> None:
        """Wait for the event or log record being projected now, and those already waiting
        (before shutting down). Bulk work (the text log download, retention) calls it before
        each batch: the projection goes first, and an event waits for at most the one batch
        already under way, not for a stream of them."""
        async with self._lock:
            return

    async def log_line(self, record: m.LogRecorded) -> None:
        """Keep one log record (the handler of ``session-api.logs``); duplicates are dropped."""
        async with self._lock, self._sessions() as db:
            session_id = _uuid(record.session_id)
            if session_id is None and record.run_id is not None:
                session_id = await db.scalar(select(Run.session_id).where(Run.id == record.run_id))
            db.add(
                LogLine(
                    message_id=record.message_id,
                    sent_at=record.sent_at,
                    session_id=session_id,
                    run_id=record.run_id,
                    service=record.service[:32],
                    panel=record.panel,
                    level=record.level,
                    logger=record.logger[:120],
                    text=record.text,
                )
            )
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()
                self.handled += 1
                return
        self.handled += 1
        for listener in self.listeners:
            await listener(record)

    # --- workers ------------------------------------------------------------------------

    async def _worker(self, db: AsyncSession, e: m.WorkerHeartbeat) -> None:
        row = await db.get(Worker, e.instance)
        if row is None:
            row = Worker(instance=e.instance)
            db.add(row)
        row.service, row.host, row.pid = e.service, e.host, e.pid
        row.started_at, row.interval_s, row.handled = e.started_at, e.interval_s, e.handled
        row.seen_at = max(e.sent_at, row.seen_at) if row.seen_at else e.sent_at
        # processes gone for a day are forgotten (a restart is a new instance)
        await db.execute(delete(Worker).where(Worker.seen_at < utcnow() - WORKER_FORGET))

    # --- microscopes and leases ---------------------------------------------------------

    async def _microscope(self, db: AsyncSession, e: m.MicroscopeReported) -> None:
        row = await db.get(Microscope, e.microscope_id)
        if row is None:
            row = Microscope(id=e.microscope_id, name=e.name)
            db.add(row)
        row.name, row.driver = e.name, e.driver
        row.volumes = [v.model_dump() for v in e.volumes]
        row.bytes_per_hour = e.bytes_per_hour
        row.reported_at = e.sent_at

    async def _lease_granted(self, db: AsyncSession, e: m.LeaseGranted) -> None:
        row = await db.get(Microscope, e.holder.microscope_id)
        if row is not None:
            row.lease_holder = e.holder.model_dump(mode="json")

    async def _lease_gone(self, db: AsyncSession, e: m.LeaseReleased | m.LeaseLost) -> None:
        row = await db.get(Microscope, e.holder.microscope_id)
        if row is not None and row.lease_holder:
            if row.lease_holder.get("run_id") == (
                str(e.holder.run_id) if e.holder.run_id else None
            ):
                row.lease_holder = None

    # --- runs ---------------------------------------------------------------------------

    async def _state(self, db: AsyncSession, e: m.RunStateChanged) -> None:
        run = await db.get(Run, e.run_id)
        if run is None:
            log.warning("state of unknown run %s ignored", e.run_id)
            return
        await apply_state(db, run, e.state, e.exit_reason, e.detail)
        if e.host:
            run.host, run.pid = e.host, e.pid

    async def _heartbeat(self, db: AsyncSession, e: m.RunHeartbeatSent) -> None:
        run = await db.get(Run, e.run_id)
        if run is not None and run.state != RunState.ENDED:
            run.heartbeat_at, run.host, run.pid = e.sent_at, e.host, e.pid

    async def _decision(self, db: AsyncSession, e: m.DecisionRequested) -> None:
        run = await db.get(Run, e.run_id)
        if run is not None and run.state != RunState.ENDED:
            run.decision = {
                "grid_id": str(e.grid_id),
                "grid_name": e.grid_name,
                "has_next_grid": e.has_next_grid,
                "cause": e.cause,
                "reprompt_reason": e.reprompt_reason,
            }

    async def _pause(self, db: AsyncSession, e: m.PauseBetweenGridsChanged) -> None:
        run = await db.get(Run, e.run_id)
        if run is not None:
            run.pause_between_grids = e.enabled

    async def _queue(self, db: AsyncSession, e: m.QueueUpdated) -> None:
        run = await db.get(Run, e.run_id)
        if run is None or run.state == RunState.ENDED:  # settled when it ended
            return
        before = {str(i["target_id"]): i["status"] for i in (run.queue or {}).get("items", [])}
        run.queue = {
            "items": [i.model_dump(mode="json") for i in e.items],
            "counts": e.counts,
        }
        # only the targets whose status changed, one statement per status: a run sends its
        # whole queue before and after every acquisition, and a statement per item held the
        # projector (every other run's events waited) for seconds under load
        changed: dict[str, list[uuid.UUID]] = {}
        for item in e.items:
            if before.get(str(item.target_id)) != item.status:
                changed.setdefault(item.status, []).append(item.target_id)
        for status, ids in changed.items():
            await db.execute(update(Target).where(Target.id.in_(ids)).values(status=status))

    # --- grids and images ---------------------------------------------------------------

    async def _grid_loaded(self, db: AsyncSession, e: m.GridLoaded) -> None:
        await db.execute(update(Grid).where(Grid.id == e.grid_id).values(status="screening"))
        run = await db.get(Run, e.run_id)
        if run is not None:
            run.current_grid = e.grid_name

    async def _grid_finished(self, db: AsyncSession, e: m.GridFinished) -> None:
        # a grid of an atlas-only run that took nothing there stays to be screened
        done = "done" if e.screened else "pending"
        await db.execute(update(Grid).where(Grid.id == e.grid_id).values(status=done))
        # what was still queued there when the run moved on ("next grid") is not any more
        await db.execute(
            update(Target)
            .where(Target.grid_id == e.grid_id, Target.status.in_([const(x) for x in OPEN]))
            .values(status=None)
        )

    async def _image(
        self,
        db: AsyncSession,
        session_id: uuid.UUID,
        image_id: uuid.UUID,
        kind: str,
        grid_id: uuid.UUID | None,
        ref: m.ImageRef,
    ) -> None:
        height, width = (ref.shape[-2], ref.shape[-1]) if len(ref.shape) >= 2 else (0, 0)
        row = {
            "id": image_id,
            "kind": kind,
            "session_id": session_id,
            "grid_id": grid_id,
            "path": ref.path,
            "preview_path": ref.preview_path,
            "width": width,
            "height": height,
            "pixel_size_a": ref.pixel_size_a,
        }
        await insert_new(db, cast(Table, Image.__table__), [row])

    async def _session_of(self, db: AsyncSession, run_id: uuid.UUID) -> uuid.UUID | None:
        return await db.scalar(select(Run.session_id).where(Run.id == run_id))

    async def _atlas(self, db: AsyncSession, e: m.AtlasAcquired) -> None:
        if (session_id := await self._session_of(db, e.run_id)) is not None:
            await self._image(db, session_id, e.atlas_id, "atlas", e.grid_id, e.image)
        await db.execute(update(Grid).where(Grid.id == e.grid_id).values(atlas_id=e.atlas_id))

    async def _square_image(self, db: AsyncSession, e: m.SquareAcquired) -> None:
        if (session_id := await self._session_of(db, e.run_id)) is not None:
            await self._image(db, session_id, e.square_id, "square", e.grid_id, e.image)
        await db.execute(
            update(Target).where(Target.id == e.square_id).values(image_id=e.square_id)
        )

    async def _targets(
        self, db: AsyncSession, run_id: uuid.UUID, found: tuple[m.Target, ...]
    ) -> None:
        session_id = await self._session_of(db, run_id)
        if session_id is None:
            return
        rows = [
            {
                "id": t.target_id,
                "kind": t.kind,
                "session_id": session_id,
                "run_id": run_id,
                "grid_id": t.grid_id,
                "parent_id": t.parent_id,
                "y": t.y,
                "x": t.x,
                "size_px": t.size_px,
                "cls": t.cls,
                "score": t.score,
                "ice_nm": t.ice_nm,
                "status": None,
                "image_id": None,
            }
            for t in found
        ]
        await insert_new(db, cast(Table, Target.__table__), rows)

    async def _squares(self, db: AsyncSession, e: m.SquaresFound) -> None:
        await self._targets(db, e.run_id, e.squares)

    async def _holes(self, db: AsyncSession, e: m.HolesFound) -> None:
        await self._targets(db, e.run_id, e.holes)

    # --- exposures ----------------------------------------------------------------------

    async def _exposure(self, db: AsyncSession, e: m.ExposureAcquired) -> None:
        run = await db.get(Run, e.run_id)
        if run is None or await db.get(Exposure, e.exposure_id) is not None:
            return
        db.add(
            Exposure(
                id=e.exposure_id,
                session_id=run.session_id,
                run_id=run.id,
                grid_id=e.grid_id,
                hole_id=e.hole_id,
                path=e.movie.path,
                acquired_at=e.sent_at,
            )
        )
        run.exposures += 1
        run.last_exposure_at = e.sent_at

    async def _processed(self, db: AsyncSession, e: m.ExposureProcessed) -> None:
        row = await db.get(Exposure, e.exposure_id)
        if row is None:
            return
        row.status, row.processed_at, row.processing_s = "processed", utcnow(), e.seconds
        if e.ctf is not None:
            row.defocus1_a, row.defocus2_a = e.ctf.defocus1_a, e.ctf.defocus2_a
            row.astig_angle_deg = e.ctf.astig_angle_deg
            row.ctf_fit_resolution_a, row.ctf_cc = e.ctf.fit_resolution_a, e.ctf.cc
            row.ctf_low_confidence = e.ctf.low_confidence
        row.drift_total_a, row.ice_nm = e.drift_total_a, e.ice_nm
        for attr, path in (("thumbnail_id", e.thumbnail_path), ("spectrum_id", e.spectrum_path)):
            if path:
                image_id = uuid.uuid5(e.exposure_id, attr)
                ref = m.ImageRef(path=path, pixel_size_a=1.0, shape=(256, 256), preview_path=path)
                kind = attr.removesuffix("_id")
                await self._image(db, row.session_id, image_id, kind, row.grid_id, ref)
                setattr(row, attr, image_id)

    async def _failed(self, db: AsyncSession, e: m.ImageFailed) -> None:
        row = await db.get(Exposure, e.image_id)
        if row is None:
            return
        if row.status != "failed":
            run = await db.get(Run, row.run_id)
            if run is not None:
                run.exposures_failed += 1
        row.status, row.error = "failed", e.reason


async def apply_state(
    db: AsyncSession,
    run: Run,
    state: RunState,
    exit_reason: str | None,
    detail: str | None,
) -> bool:
    """Move ``run`` to ``state`` when the state machine allows it; returns whether it moved.
    An ended run is final: a late or repeated event never changes its exit reason."""
    if run.state == RunState.ENDED or not can_move(RunState(run.state), state):
        log.info("run %s: %s → %s ignored (not allowed)", run.id, run.state, state)
        return False
    run.state = state.value
    if detail:
        run.detail = detail
    if state != RunState.AWAITING_DECISION:
        run.decision = None
    if state == RunState.ENDED:
        run.exit_reason = exit_reason or "failed"
        run.ended_at = run.ended_at or utcnow()
        await db.execute(
            update(Session)
            .where(Session.id == run.session_id, Session.live_run_id == run.id)
            .values(live_run_id=None)
        )
        await _settle_queue(db, run)
    return True


OPEN = ("queued", "acquiring")
"""Target statuses of a run's queue still to do."""


async def _settle_queue(db: AsyncSession, run: Run) -> None:
    """An ended run acquires nothing: a target it was acquiring when it stopped (a square
    whose holes were not yet found) is queued again, as are the rest of its queue, so that
    the session started again goes on with them (``session_api.grids``)."""
    await db.execute(
        update(Target)
        .where(Target.session_id == run.session_id, Target.status == "acquiring")
        .values(status="queued")
    )
    if run.queue:
        items, counts = [], dict(run.queue.get("counts", {}))
        for item in run.queue.get("items", []):
            if item.get("status") == "acquiring":
                item = {**item, "status": "queued"}
                kind = f"{item.get('kind', 'square')}s_queued"
                counts[kind] = counts.get(kind, 0) + 1
            items.append(item)
        counts["queued"] = counts.get("queued", 0) + counts.pop("acquiring", 0)
        run.queue = {"items": items, "counts": counts}


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
