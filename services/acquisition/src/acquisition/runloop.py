"""The run loop: one run of a session's screening on one microscope.

Takes the lease before touching the scope; per grid: load → atlas → squares found by
processing → square images → holes found by processing → exposures handed to processing, as
the session's screening plan says (:mod:`acquisition.plan`; one entry: :mod:`acquisition.targets`).
Stop is soft (the current acquisition finishes; the run stops when it next asks its queue)
and honoured in every wait; losing the lease stops all driving at the next safe point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

from acquisition import commands, targets
from acquisition.driver import DiskFull, DriverError, Microscope, no_checkpoint
from acquisition.plan import Plan, order, pick
from acquisition.queue import Entry, RunQueue
from acquisition.simulator.scope import run_dir
from acquisition.skips import Skips
from acquisition.waits import LeaseGone, SkipGrid, StopRequested, interruptible
from proto import messages as m
from proto.bus.base import Bus, Subscription
from proto.errors import BusUnavailable, LeaseBusy
from proto.lease.base import HeldLease, LeaseManager
from proto.messages.run import Choice
from proto.states import ExitReason, RunState, can_move
from proto.topology import EVENTS, transient_queue

log = logging.getLogger("acquisition.run")


@dataclass(frozen=True)
class RunSettings:
    data_root: Path
    finder_timeout_s: float = 120.0
    heartbeat_s: float = 2.0
    squares_per_grid: int = 3
    holes_per_square: int = 4


class RunLoop:
    """Executes one ``StartRun``; :meth:`execute` returns how the run ended."""

    def __init__(
        self,
        start: m.StartRun,
        *,
        bus: Bus,
        leases: LeaseManager,
        scope: Microscope,
        settings: RunSettings,
        host: str,
        pid: int,
    ) -> None:
        self.start, self.bus, self.leases, self.scope = start, bus, leases, scope
        self.settings, self.host, self.pid = settings, host, pid
        self.run_id = start.run_id
        self.state = RunState.STARTING
        self.commands: asyncio.Queue[m.Message] = asyncio.Queue()
        self.stop, self.lost = asyncio.Event(), asyncio.Event()
        self.decided = asyncio.Event()
        self.decision: Choice | None = None
        self.stopped_by: str | None = None
        self.pause = start.pause_between_grids
        self.plan = Plan.of(start.plan, settings.squares_per_grid, settings.holes_per_square)
        self.queue = RunQueue()
        self.skips = Skips()
        self.known: dict[UUID, m.Target] = {}
        self.grid: m.GridSpec | None = None
        self.lease: HeldLease | None = None
        self.connected = False
        """Whether this run connected the scope (a locked run never touches it, not even to
        disconnect: in the embedded form runs share the microscope object)."""
        self._results: dict[UUID, asyncio.Future[tuple[m.Target, ...]]] = {}
        self._extra = {
            "run_id": str(start.run_id),
            "session_id": str(start.session_id),
            "microscope_id": start.microscope_id,
            "panel": "acquisition",
        }

    # --- logging and events -------------------------------------------------------------

    def info(self, text: str, *args: object) -> None:
        log.info(text, *args, extra=self._extra)

    def warn(self, text: str, *args: object) -> None:
        log.warning(text, *args, extra=self._extra)

    def error(self, text: str, *args: object) -> None:
        log.error(text, *args, extra=self._extra)

    async def set_state(
        self,
        state: RunState,
        exit_reason: ExitReason | None = None,
        detail: str | None = None,
        requested_by: str | None = None,
    ) -> None:
        """Move and announce; once stopping, the run only moves on to ``ended``."""
        if self.state == RunState.STOPPING and state != RunState.ENDED:
            return
        if not can_move(self.state, state) or (state == self.state and state != RunState.STARTING):
            return
        self.state = state
        await self.bus.publish(
            m.RunStateChanged(
                run_id=self.run_id,
                session_id=self.start.session_id,
                microscope_id=self.start.microscope_id,
                state=state,
                exit_reason=exit_reason,
                detail=detail,
                host=self.host,
                pid=self.pid,
                requested_by=requested_by,
            )
        )

    async def publish_queue(self) -> None:
        await self.bus.publish(
            m.QueueUpdated(
                run_id=self.run_id,
                session_id=self.start.session_id,
                items=self.queue.items(),
                counts=self.queue.counts(),
            )
        )

    # --- the run ------------------------------------------------------------------------

    async def execute(self) -> tuple[ExitReason, str]:
        """Run to the end. Cancelling the task is force-kill: nothing more is announced."""
        pump = asyncio.create_task(commands.pump(self), name=f"commands {self.run_id}")
        sub: Subscription | None = None
        tasks: list[asyncio.Task[None]] = []
        killed = False
        try:
            await self.set_state(RunState.STARTING)
            holder = m.LeaseHolder(
                microscope_id=self.start.microscope_id,
                session_id=self.start.session_id,
                session_name=self.start.session_name,
                run_id=self.run_id,
                host=self.host,
                pid=self.pid,
            )
            try:
                self.lease = await self.leases.acquire(holder)
            except LeaseBusy as busy:
                return await self._locked(holder, busy)
            await self.bus.publish(m.LeaseGranted(run_id=self.run_id, holder=holder))
            tasks = [
                asyncio.create_task(self._heartbeat()),
                asyncio.create_task(self._watch_lease(self.lease)),
            ]
            sub = await self.bus.subscribe(
                transient_queue(
                    "acquisition-run", EVENTS, ("squares.found", "holes.found", "image.failed")
                ),
                m.Message,
                self._on_result,
            )
            reason, detail = await self._screen()
        except asyncio.CancelledError:
            killed = True
            raise
        finally:
            pump.cancel()
            for task in tasks:
                task.cancel()
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.close()
            await self._let_go(killed)
        try:
            await self.set_state(RunState.ENDED, reason, detail)
        except BusUnavailable:
            log.error("could not announce the end (%s) of run %s", reason, self.run_id)
        return reason, detail

    async def _locked(self, holder: m.LeaseHolder, busy: LeaseBusy) -> tuple[ExitReason, str]:
        who = busy.holder.describe() if isinstance(busy.holder, m.LeaseHolder) else "another run"
        detail = f"microscope {self.scope.name} is locked by {who}"
        self.error("%s; not connecting to the scope", detail)
        other = busy.holder if isinstance(busy.holder, m.LeaseHolder) else None
        await self.bus.publish(
            m.LeaseDenied(
                run_id=self.run_id,
                microscope_id=self.start.microscope_id,
                requester=holder,
                holder=other,
            )
        )
        await self.set_state(RunState.ENDED, ExitReason.LOCKED, detail)
        return ExitReason.LOCKED, detail

    async def _let_go(self, killed: bool) -> None:
        """Disconnect, then release the lease (so a new Start right after finds it free)."""
        if self.connected:
            self.scope.checkpoint = no_checkpoint
            with contextlib.suppress(Exception):
                await self.scope.disconnect()
        if self.lease is None:
            return
        lost = self.lease.lost.is_set()
        await self.lease.release()
        if killed:
            return
        holder = self.lease.holder
        with contextlib.suppress(Exception):
            if lost:
                reason = self.lease.lost_reason or "lost"
                await self.bus.publish(
                    m.LeaseLost(run_id=self.run_id, holder=holder, reason=reason)
                )
            else:
                await self.bus.publish(m.LeaseReleased(run_id=self.run_id, holder=holder))

    async def _screen(self) -> tuple[ExitReason, str]:
        try:
            self.safe_point()
            self.info("connecting to %s (%s)", self.scope.name, self.scope.driver)
            await self.scope.connect()
            self.connected = True
            self.scope.checkpoint = self.safe_point
            await self.set_state(RunState.RUNNING)
            self.info("screening plan: %s", self.plan.describe())
            grids = self.start.grids
            if self.start.grids_done:
                self.info(
                    "grids screened by earlier runs, left out: %s", ", ".join(self.start.grids_done)
                )
            for index, grid in enumerate(grids):
                await self._grid(grid, has_next=index < len(grids) - 1)
            if self.stop.is_set():
                raise StopRequested()
            self.info("all %d grids screened; %d exposures", len(grids), self.queue.exposures)
            return ExitReason.COMPLETED, f"{len(grids)} grids screened"
        except StopRequested:
            self.info("stopped as asked by %s", self.stopped_by or "an operator")
            return ExitReason.STOPPED, f"stopped by {self.stopped_by or 'an operator'}"
        except LeaseGone:
            return self._lost()
        except (DriverError, DiskFull) as exc:
            if self._lease_gone():
                return self._lost()
            self.error("the microscope failed: %s", exc)
            return ExitReason.FAILED, str(exc)
        except Exception as exc:
            if self._lease_gone():  # e.g. the broker went away: the lease went with it
                return self._lost()
            log.exception("run failed", extra=self._extra)
            return ExitReason.FAILED, f"{type(exc).__name__}: {exc}"

    def _lease_gone(self) -> bool:
        return self.lost.is_set() or (self.lease is not None and self.lease.lost.is_set())

    def _lost(self) -> tuple[ExitReason, str]:
        why = self.lease.lost_reason if self.lease else "lease lost"
        self.error("lease lost (%s): stopped driving the scope", why)
        return ExitReason.LOST, f"lease lost: {why}"

    def safe_point(self) -> None:
        """Between acquisitions: stop driving when the lease is gone or a stop arrived."""
        if self.lost.is_set():
            raise LeaseGone()
        if self.stop.is_set():
            raise StopRequested()

    # --- one grid -----------------------------------------------------------------------

    async def _grid(self, grid: m.GridSpec, *, has_next: bool) -> None:
        self.safe_point()
        self.grid = grid
        out = run_dir(
            self.settings.data_root, self.start.microscope_id, self.start.session_name, self.run_id
        )
        out = out / f"grid{grid.position:02d}"
        self.info("loading grid %s (cassette position %d)", grid.name, grid.position)
        await self.scope.load_grid(grid)
        await self.bus.publish(
            m.GridLoaded(
                run_id=self.run_id,
                grid_id=grid.grid_id,
                grid_name=grid.name,
                position=grid.position,
            )
        )
        self.safe_point()
        squares, imaged = await self._squares(grid, out)
        self.known.update({t.target_id: t for t in squares})
        self._queue_grid(grid, squares, imaged)
        await self.publish_queue()
        try:
            while True:
                entry = self.next_entry()
                if entry is None:
                    if not self.pause:
                        break
                    if await commands.prompt(self, grid, has_next, "grid_done") == "next_grid":
                        break
                    continue
                await self.publish_queue()
                await targets.acquire(self, entry, grid, out, has_next)
                await self.publish_queue()
        except SkipGrid:
            self.info("moving on to the next grid as asked")
        acquired = any(e.status == "done" for e in self.queue.entries)
        await self.bus.publish(
            m.GridFinished(
                run_id=self.run_id,
                grid_id=grid.grid_id,
                grid_name=grid.name,
                exposures=self.queue.exposures,
                screened=acquired or not self.plan.atlas_only,
            )
        )
        self.queue.clear_grid()
        await self.publish_queue()

    def _queue_grid(
        self, grid: m.GridSpec, squares: tuple[m.Target, ...], imaged: frozenset[UUID]
    ) -> None:
        """Queue what the grid starts with: what an earlier run left queued there, else the
        plan's squares (none when the plan is atlas only)."""
        left = grid.atlas.queued if grid.atlas is not None else ()
        if left:
            self.known.update({t.target_id: t for t in left})
            holes = [t for t in left if t.kind == "hole"]
            rest = [t for t in left if t.kind != "hole"]
            self.info(
                "going on with what the earlier run left queued on grid %s: %s, %s",
                grid.name,
                _count(len(holes), "hole"),
                _count(len(rest), "square"),
            )
            ordering = self.plan.ordering
            self.queue.add(order(holes, ordering) + order(rest, ordering), grid.name)
            return
        good = sum(1 for s in squares if s.cls == "good")
        before = f", {len(imaged)} imaged before" if imaged else ""
        if self.plan.atlas_only:
            self.info(
                "%d squares on grid %s (%d good%s); atlas only: queued none (choose squares in"
                " the session browser)",
                len(squares),
                grid.name,
                good,
                before,
            )
            return
        chosen = pick(squares, self.plan.squares_per_grid, self.plan.ordering, skip=imaged)
        self.info(
            "%d squares on grid %s (%d good%s); queued the %s %d",
            len(squares),
            grid.name,
            good,
            before,
            "thinnest-ice" if self.plan.ordering == "thinnest_ice" else "best",
            len(chosen),
        )
        self.queue.add(chosen, grid.name)

    async def _squares(
        self, grid: m.GridSpec, out: Path
    ) -> tuple[tuple[m.Target, ...], frozenset[UUID]]:
        """The grid's squares, and those already imaged: from the atlas an earlier run took
        (a restart neither takes another nor finds its squares again), else from a new one."""
        known = grid.atlas
        if known is not None and known.squares:
            self.info(
                "grid %s has an atlas from an earlier run (%d squares, %d imaged): reusing it",
                grid.name,
                len(known.squares),
                len(known.imaged),
            )
            return known.squares, known.imaged
        self.info("acquiring the atlas of grid %s", grid.name)
        atlas_id = uuid4()
        expected = self.expect(atlas_id)
        ref = await self.scope.atlas(grid, out)
        await self.bus.publish(
            m.AtlasAcquired(run_id=self.run_id, grid_id=grid.grid_id, atlas_id=atlas_id, image=ref)
        )
        found = await self.await_finder(expected, f"squares on the atlas of grid {grid.name}")
        return found, frozenset()

    def next_entry(self) -> Entry | None:
        """Ask the queue for the next target: this is where a soft stop takes effect."""
        self.safe_point()
        return self.queue.next()

    # --- finder results -----------------------------------------------------------------

    def expect(self, parent_id: UUID) -> asyncio.Future[tuple[m.Target, ...]]:
        future = self._results.get(parent_id)
        if future is None:
            future = self._results[parent_id] = asyncio.get_running_loop().create_future()
        return future

    async def _on_result(self, message: m.Message) -> None:
        if message.run_id != self.run_id:
            return
        if isinstance(message, m.SquaresFound):
            parent, found = message.atlas_id, message.squares
        elif isinstance(message, m.HolesFound):
            parent, found = message.square_id, message.holes
        elif isinstance(message, m.ImageFailed) and message.image_id in self._results:
            self.error("processing could not use image %s: %s", message.path, message.reason)
            parent, found = message.image_id, ()
        else:
            return
        future = self.expect(parent)
        if not future.done():
            future.set_result(found)

    async def await_finder(
        self,
        expected: asyncio.Future[tuple[m.Target, ...]],
        what: str,
        skip: asyncio.Event | None = None,
    ) -> tuple[m.Target, ...]:
        """What processing found, or nothing after the finder timeout; a stop, a lost lease
        (or ``skip``) ends the wait."""
        timeout = self.settings.finder_timeout_s
        self.info("waiting up to %.0f s for processing to find %s", timeout, what)
        try:
            return await interruptible(
                asyncio.shield(expected),
                stop=self.stop,
                lost=self.lost,
                timeout=timeout,
                skip=skip,
            )
        except TimeoutError:
            self.error(
                "no answer from processing about %s within %.0f s; is processing running?",
                what,
                timeout,
            )
            return ()

    # --- background ---------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.bus.publish(
                    m.RunHeartbeatSent(
                        run_id=self.run_id,
                        session_id=self.start.session_id,
                        microscope_id=self.start.microscope_id,
                        state=self.state,
                        host=self.host,
                        pid=self.pid,
                    )
                )
            await asyncio.sleep(self.settings.heartbeat_s)  # periodic by design

    async def _watch_lease(self, lease: HeldLease) -> None:
        await lease.lost.wait()
        self.error(
            "lease of %s lost: %s; no more stage moves or exposures",
            self.scope.name,
            lease.lost_reason,
        )
        self.lost.set()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
