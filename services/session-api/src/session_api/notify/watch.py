"""*Run silent*: a live run session-api has not heard from, or that makes no progress.

Two things session-api knows tell it: the run's heartbeat (``runs.heartbeat_at``, every 2 s
from the run process) and its progress (an image, a grid, a state change, as the projector
hears them). A live run whose heartbeat is older than ``silent_s`` is hung or cut off — the
reconciler ends it ``lost`` only once its lease is gone too; one that is ``running`` (not
waiting for a person at the pause prompt) but made no progress for ``stalled_s`` is stuck.
Either is told once, and again only after the run was heard from in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proto import messages as m
from proto.states import RunState
from session_api.db.models import Run, const
from session_api.notify.notices import Notice

PROGRESS = (
    m.RunStateChanged,
    m.GridLoaded,
    m.GridFinished,
    m.AtlasAcquired,
    m.SquareAcquired,
    m.ExposureAcquired,
    m.DecisionTaken,
)
"""Events that show a run moving on."""


@dataclass
class SilenceWatch:
    silent_s: float
    stalled_s: float
    started: datetime
    """When this watch began: progress before it is not known (a restart), so it counts as
    progress then."""
    progress: dict[UUID, datetime] = field(default_factory=dict)
    told: set[UUID] = field(default_factory=set)

    def heard(self, event: m.Message) -> None:
        if isinstance(event, PROGRESS) and event.run_id is not None:
            self.progress[event.run_id] = max(
                event.sent_at, self.progress.get(event.run_id, event.sent_at)
            )
            if isinstance(event, m.RunStateChanged) and event.state == RunState.ENDED:
                self.progress.pop(event.run_id, None)
                self.told.discard(event.run_id)

    async def check(self, db: AsyncSession, now: datetime) -> list[Notice]:
        live = Run.state != const(RunState.ENDED.value)  # the live-runs index (db.models)
        runs = (await db.scalars(select(Run).where(live))).all()
        out = []
        quiet: set[UUID] = set()
        for run in runs:
            why = self._why(run, now)
            if why is None:
                continue
            quiet.add(run.id)
            if run.id in self.told:
                continue
            self.told.add(run.id)
            out.append(
                Notice(
                    frozenset({"run_silent"}),
                    "Run silent",
                    why,
                    now,
                    "warning",
                    microscope_id=run.microscope_id,
                    session_id=run.session_id,
                    run_id=run.id,
                    key=f"silent:{run.id}",
                )
            )
        self.told &= quiet  # heard from again (or ended): told again next time
        return out

    def _why(self, run: Run, now: datetime) -> str | None:
        beat = run.heartbeat_at or run.started_at
        if now - beat > timedelta(seconds=self.silent_s):
            return (
                f"No heartbeat from the run for {(now - beat).total_seconds():.0f} s "
                f"(state {RunState(run.state).label}): its process may be hung or cut off."
            )
        if run.state != RunState.RUNNING.value:
            return None
        moved = max(
            t
            for t in (run.started_at, run.last_exposure_at, self.progress.get(run.id), self.started)
            if t is not None
        )
        idle = (now - moved).total_seconds()
        if idle > self.stalled_s:
            return f"The run has made no progress (no image, no grid) for {idle / 60:.0f} min."
        return None
