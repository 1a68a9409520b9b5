"""Exposures per hour, as the dashboard card and the metrics show it: the live run's recent
pace, and nothing for an idle scope, whatever its last run took a minute ago."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from session_api.db.models import Exposure, Microscope, Run, Session
from session_api.db.types import utcnow
from session_api.views import exposures_per_hour


async def test_exposures_per_hour_is_the_live_runs_pace_and_zero_when_idle(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with sessions() as db:
        for mid in ("k1", "k2", "k3"):
            db.add(Microscope(id=mid, name=mid.upper()))
        await db.flush()

        async def run(
            mid: str, state: str, started_min_ago: float, exposures_min_ago: list[float]
        ) -> None:
            s = Session(id=uuid.uuid4(), name=mid, microscope_id=mid, created_by="t")
            db.add(s)
            await db.flush()
            run_id = uuid.uuid4()
            db.add(
                Run(
                    id=run_id,
                    session_id=s.id,
                    microscope_id=mid,
                    number=1,
                    state=state,
                    requested_by="t",
                    started_at=now - timedelta(minutes=started_min_ago),
                )
            )
            await db.flush()
            for ago in exposures_min_ago:
                db.add(
                    Exposure(
                        id=uuid.uuid4(),
                        session_id=s.id,
                        run_id=run_id,
                        grid_id=uuid.uuid4(),
                        hole_id=uuid.uuid4(),
                        path="m.mrc",
                        acquired_at=now - timedelta(minutes=ago),
                    )
                )

        # k1: running for an hour, 30 exposures in the last 15 min (and older ones) -> 120/h
        await run("k1", "running", 60, [i / 2 for i in range(30)] + [20, 30, 40])
        # k2: its run ended a minute ago after 30 exposures in 15 min: idle now
        await run("k2", "ended", 16, [1 + i / 2 for i in range(30)])
        # k3: started 5 min ago, 10 exposures: 120/h, not 40/h diluted over 15 min
        await run("k3", "running", 5, [i / 2 for i in range(10)])
        await db.commit()
    async with sessions() as db:
        assert await exposures_per_hour(db, "k1") == 120.0
        assert await exposures_per_hour(db, "k2") == 0.0
        assert abs(await exposures_per_hour(db, "k3") - 120.0) < 1.0
