"""The reconciler ends silent runs without a lease ``lost`` — but not one whose last event is
still on its way (it must look dead for a second round, and the projection must have caught up
past the moment it first looked dead)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto.lease.memory import MemoryLeases
from proto.messages.lease import LeaseHolder
from session_api.db.models import Microscope, Run, Session
from session_api.db.types import utcnow
from session_api.reconcile import reconcile_once


async def test_a_silent_run_without_its_lease_ends_lost_after_a_second_look(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    leases = MemoryLeases()
    dead, alive = uuid.uuid4(), uuid.uuid4()
    async with sessions() as db:
        db.add(Microscope(id="k1", name="K1"))
        db.add(Microscope(id="k2", name="K2"))
        await db.flush()
        for mid, run_id in (("k1", dead), ("k2", alive)):
            s = Session(name=mid, microscope_id=mid, created_by="t", live_run_id=run_id)
            db.add(s)
            await db.flush()
            old = utcnow() - timedelta(seconds=60)
            db.add(
                Run(
                    id=run_id,
                    session_id=s.id,
                    microscope_id=mid,
                    number=1,
                    state="running",
                    requested_by="t",
                    started_at=old,
                    heartbeat_at=old,
                )
            )
        await db.commit()
    await leases.acquire(LeaseHolder(microscope_id="k2", run_id=alive))  # hung, but holds it

    suspects: dict[uuid.UUID, object] = {}
    kw = {"heartbeat_timeout_s": 10.0, "start_timeout_s": 30.0, "suspects": suspects}
    assert await reconcile_once(sessions, leases, **kw) == []  # type: ignore[arg-type]
    assert set(suspects) == {dead}
    suspects[dead] = first = utcnow() - timedelta(seconds=11)  # the next round, 11 s later
    # the events lag: what was published after the run first looked dead is not projected
    lagging = first - timedelta(seconds=1)
    assert await reconcile_once(sessions, leases, **kw, caught_up=lagging) == []  # type: ignore[arg-type]
    assert await reconcile_once(sessions, leases, **kw) == []  # type: ignore[arg-type]
    ended = await reconcile_once(sessions, leases, **kw, caught_up=utcnow())  # type: ignore[arg-type]
    assert [r.id for r in ended] == [dead]
    async with sessions() as db:
        run = await db.get(Run, dead)
        assert run is not None and run.state == "ended" and run.exit_reason == "lost"
        assert "does not hold the lease" in (run.detail or "")
        kept = await db.get(Run, alive)
        assert kept is not None and kept.state == "running"
    assert suspects == {}
