"""One event of every kind session-api projects, aimed at a seeded facility's busy session
(``support.facility``): for the EXPLAIN test and the projection timings of
``benchmarks/scale.py``.

``Cases.make(kind)`` prepares what the event needs (a fresh live run to end, a fresh grid with
queued targets to finish, …) and returns the events to project first (an exposure before its
processing) and the event itself; only projecting that one is what a caller times.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto import messages as m
from proto.messages.disk import VolumeStatus
from proto.states import ExitReason, RunState
from session_api.db.models import Grid, Run, Session, Target
from support.facility import Facility

TARGETS_PER_GRID = 200
"""Targets queued on a grid a case finishes."""
SQUARES_FOUND = 60
HOLES_FOUND = 300
"""Targets per finder event: the finders report every square of an atlas and every hole of a
square (the simulator's 768 px squares give 300–500 holes)."""


def _now() -> datetime:
    return datetime.now(UTC)


class Cases:
    """Events for the busy session of ``fac``, one fresh event per :meth:`make` call."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], fac: Facility) -> None:
        self.sessions, self.fac = sessions, fac
        self.scope = fac.scopes[0]
        self._before: list[m.Message] = []
        self._made: dict[str, Callable[[], Awaitable[m.Message]]] = {
            "microscope.reported": self._reported,
            "lease.granted": self._granted,
            "lease.released": self._released,
            "lease.lost": self._lost,
            "run.heartbeat_sent": self._heartbeat,
            "run.decision_requested": self._decision,
            "run.pause_between_grids_changed": self._pause,
            "run.state_changed (awaiting decision)": self._awaiting,
            "run.state_changed (ended)": self._ended,
            "queue.updated": self._queue,
            "grid.loaded": self._loaded,
            "grid.finished": self._finished,
            "atlas.acquired": self._atlas,
            "squares.found": self._squares,
            "square.acquired": self._square,
            "holes.found": self._holes,
            "exposure.acquired": self._exposure,
            "exposure.processed": self._processed,
            "image.failed": self._failed,
            "worker.heartbeat_sent": self._worker,
            "log.recorded": self._log,
        }

    @property
    def kinds(self) -> list[str]:
        return list(self._made)

    async def make(self, kind: str) -> tuple[list[m.Message], m.Message]:
        """The events to project first (untimed) and the event of ``kind``."""
        self._before = []
        event = await self._made[kind]()
        return self._before, event

    # --- helpers ----------------------------------------------------------------------------

    def _holder(self) -> m.LeaseHolder:
        return m.LeaseHolder(
            microscope_id=self.scope,
            session_id=self.fac.busy,
            session_name="busy",
            run_id=self.fac.busy_run,
            host="scope-pc",
            pid=4242,
        )

    async def _fresh_run(self, *, acquiring: bool) -> Run:
        """A new live run of the busy session (with one target it was acquiring)."""
        async with self.sessions() as db:
            number = await db.scalar(
                select(func.max(Run.number)).where(Run.session_id == self.fac.busy)
            )
            run = Run(
                id=uuid.uuid4(),
                session_id=self.fac.busy,
                microscope_id=self.scope,
                number=(number or 0) + 1,
                state=RunState.RUNNING.value,
                requested_by="bench",
                heartbeat_at=_now(),
            )
            db.add(run)
            if acquiring:
                db.add(self._target(run.id, uuid.uuid4(), uuid.uuid4(), status="acquiring"))
            await db.commit()
            return run

    def _target(
        self, run_id: uuid.UUID, grid: uuid.UUID, parent: uuid.UUID, status: str | None = None
    ) -> Target:
        return Target(
            id=uuid.uuid4(),
            kind="hole",
            session_id=self.fac.busy,
            run_id=run_id,
            grid_id=grid,
            parent_id=parent,
            y=1.0,
            x=1.0,
            size_px=40.0,
            cls="good",
            score=0.5,
            status=status,
        )

    async def _grid(self, targets: int = 0) -> Grid:
        """A new grid of the busy session, with ``targets`` queued on it."""
        async with self.sessions() as db:
            grid = Grid(
                id=uuid.uuid4(),
                session_id=self.fac.busy,
                name=f"bench-{uuid.uuid4().hex[:6]}",
                position=99,
                status="screening",
            )
            db.add(grid)
            db.add_all(
                self._target(self.fac.busy_run, grid.id, grid.id, "queued") for _ in range(targets)
            )
            await db.commit()
            return grid

    def _targets(
        self, grid: uuid.UUID, parent: uuid.UUID, kind: str, n: int
    ) -> tuple[m.Target, ...]:
        return tuple(
            m.Target(
                target_id=uuid.uuid4(),
                kind=kind,
                grid_id=grid,
                parent_id=parent,
                y=10.0 * i,
                x=10.0 * i,
                size_px=40.0,
                cls="good",
                score=0.9 - i / 100,
            )
            for i in range(n)
        )

    # --- the events ---------------------------------------------------------------------------

    async def _reported(self) -> m.Message:
        volume = VolumeStatus(name="data", path="/data", total_bytes=10**13, free_bytes=6 * 10**12)
        return m.MicroscopeReported(
            microscope_id=self.scope,
            name="Krios m01",
            driver="simulator",
            volumes=(volume,),
            bytes_per_hour=4e11,
        )

    async def _granted(self) -> m.Message:
        return m.LeaseGranted(run_id=self.fac.busy_run, holder=self._holder())

    async def _released(self) -> m.Message:
        return m.LeaseReleased(run_id=self.fac.busy_run, holder=self._holder())

    async def _lost(self) -> m.Message:
        return m.LeaseLost(run_id=self.fac.busy_run, holder=self._holder(), reason="bench")

    async def _heartbeat(self) -> m.Message:
        return m.RunHeartbeatSent(
            run_id=self.fac.busy_run,
            session_id=self.fac.busy,
            microscope_id=self.scope,
            state=RunState.RUNNING,
            host="scope-pc",
            pid=4242,
        )

    async def _decision(self) -> m.Message:
        return m.DecisionRequested(
            run_id=self.fac.busy_run,
            session_id=self.fac.busy,
            grid_id=uuid.uuid4(),
            grid_name="g2",
            has_next_grid=True,
        )

    async def _pause(self) -> m.Message:
        return m.PauseBetweenGridsChanged(
            run_id=self.fac.busy_run, session_id=self.fac.busy, enabled=True, requested_by="op"
        )

    async def _state(self, run: Run, state: RunState) -> m.Message:
        return m.RunStateChanged(
            run_id=run.id,
            session_id=self.fac.busy,
            microscope_id=self.scope,
            state=state,
            exit_reason=ExitReason.COMPLETED if state == RunState.ENDED else None,
        )

    async def _awaiting(self) -> m.Message:
        return await self._state(await self._fresh_run(acquiring=False), RunState.AWAITING_DECISION)

    async def _ended(self) -> m.Message:
        """A run ending: its session's queue is settled (``projection._settle_queue``)."""
        return await self._state(await self._fresh_run(acquiring=True), RunState.ENDED)

    async def _queue(self) -> m.Message:
        async with self.sessions() as db:
            rows = (
                await db.scalars(
                    select(Target)
                    .where(Target.session_id == self.fac.busy, Target.status == "queued")
                    .limit(10)
                )
            ).all()
        items = tuple(
            m.QueueItem(
                target_id=t.id, kind="hole", grid_name="g2", label=f"hole {i}", status="queued"
            )
            for i, t in enumerate(rows)
        )
        return m.QueueUpdated(
            run_id=self.fac.busy_run,
            session_id=self.fac.busy,
            items=items,
            counts={"queued": len(items)},
        )

    async def _loaded(self) -> m.Message:
        grid = await self._grid()
        return m.GridLoaded(
            run_id=self.fac.busy_run, grid_id=grid.id, grid_name=grid.name, position=2
        )

    async def _finished(self) -> m.Message:
        """A grid finishing: what was still queued on it is not any more."""
        grid = await self._grid(TARGETS_PER_GRID)
        return m.GridFinished(
            run_id=self.fac.busy_run, grid_id=grid.id, grid_name=grid.name, exposures=100
        )

    async def _atlas(self) -> m.Message:
        grid = await self._grid()
        image = m.ImageRef(path="/data/atlas.mrc", pixel_size_a=500.0, shape=(4096, 4096))
        return m.AtlasAcquired(
            run_id=self.fac.busy_run, grid_id=grid.id, atlas_id=uuid.uuid4(), image=image
        )

    async def _squares(self) -> m.Message:
        grid, atlas = uuid.uuid4(), uuid.uuid4()
        return m.SquaresFound(
            run_id=self.fac.busy_run,
            grid_id=grid,
            atlas_id=atlas,
            squares=self._targets(grid, atlas, "square", SQUARES_FOUND),
        )

    async def _square(self) -> m.Message:
        found = await self._squares()
        assert isinstance(found, m.SquaresFound)
        self._before.append(found)
        image = m.ImageRef(path="/data/square.mrc", pixel_size_a=50.0, shape=(2048, 2048))
        return m.SquareAcquired(
            run_id=self.fac.busy_run,
            grid_id=found.grid_id,
            square_id=found.squares[0].target_id,
            image=image,
        )

    async def _holes(self) -> m.Message:
        grid, square = uuid.uuid4(), uuid.uuid4()
        return m.HolesFound(
            run_id=self.fac.busy_run,
            grid_id=grid,
            square_id=square,
            holes=self._targets(grid, square, "hole", HOLES_FOUND),
        )

    async def _exposure(self) -> m.Message:
        event = m.ExposureAcquired(
            run_id=self.fac.busy_run,
            grid_id=uuid.uuid4(),
            hole_id=uuid.uuid4(),
            exposure_id=uuid.uuid4(),
            movie=m.ImageRef(path="/data/movie.mrc", pixel_size_a=1.0, shape=(40, 4096, 4096)),
            n_frames=40,
            dose_e_per_a2=40.0,
        )
        return event

    async def _acquired_one(self) -> m.ExposureAcquired:
        """An exposure, projected before the event made with it."""
        event = await self._exposure()
        assert isinstance(event, m.ExposureAcquired)
        self._before.append(event)
        return event

    async def _processed(self) -> m.Message:
        e = await self._acquired_one()
        ctf = m.CtfResult(
            defocus1_a=15000.0,
            defocus2_a=14800.0,
            astig_angle_deg=30.0,
            fit_resolution_a=3.5,
            cc=0.8,
            low_confidence=False,
        )
        return m.ExposureProcessed(
            run_id=e.run_id,
            exposure_id=e.exposure_id,
            ctf=ctf,
            drift_total_a=5.0,
            ice_nm=40.0,
            thumbnail_path="/data/t.png",
            spectrum_path="/data/s.png",
            seconds=1.7,
        )

    async def _failed(self) -> m.Message:
        e = await self._acquired_one()
        return m.ImageFailed(
            run_id=e.run_id, image_id=e.exposure_id, path=e.movie.path, reason="truncated file"
        )

    async def _worker(self) -> m.Message:
        return m.WorkerHeartbeat(
            service="processing",
            instance="bench:1/processing",
            host="bench",
            pid=1,
            started_at=_now(),
            interval_s=10.0,
            handled=1,
        )

    async def _log(self) -> m.Message:
        return m.LogRecorded(
            run_id=self.fac.busy_run,
            service="acquisition",
            panel="acquisition",
            level="info",
            logger="acquisition.run",
            text="exposure on hole abcdef → movie.mrc",
            session_id=str(self.fac.busy),
            microscope_id=self.scope,
        )


async def busy_session(sessions: async_sessionmaker[AsyncSession], fac: Facility) -> Session:
    async with sessions() as db:
        row = await db.get(Session, fac.busy)
        assert row is not None
        return row
