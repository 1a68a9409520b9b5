"""What one event costs the projector, in statements: a square's hundreds of holes and a run's
queue (sent before and after every acquisition) cost the same few statements however many
targets they carry. The projector handles every run's events one at a time: a statement per
target held it for seconds under load, and a locked start on another run waited behind that
(its page said "starting" long after the run's log said "not connecting")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto import messages as m
from session_api.db.models import Grid, Microscope, Run, Session, Target
from session_api.projection import Projector

SID, GID, RUN = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


@contextmanager
def statements(sessions: async_sessionmaker[AsyncSession]) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = sessions.kw["bind"].sync_engine

    def note(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if sql.split()[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            seen.append(sql)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def seeded(sessions: async_sessionmaker[AsyncSession]) -> Projector:
    async with sessions() as db:
        db.add(Microscope(id="k1", name="K1"))
        await db.flush()
        db.add(Session(id=SID, name="s", microscope_id="k1", created_by="t", live_run_id=RUN))
        await db.flush()
        db.add(Grid(id=GID, session_id=SID, name="g1", position=1))
        db.add(
            Run(
                id=RUN,
                session_id=SID,
                microscope_id="k1",
                number=1,
                state="running",
                requested_by="t",
            )
        )
        await db.commit()
    return Projector(sessions)


def holes(n: int) -> tuple[m.Target, ...]:
    return tuple(
        m.Target(
            target_id=uuid.uuid4(),
            kind="hole",
            grid_id=GID,
            parent_id=GID,
            y=float(i),
            x=float(i),
            size_px=4.0,
            cls="good",
            score=0.5,
        )
        for i in range(n)
    )


def queue(found: tuple[m.Target, ...], statuses: list[str]) -> m.QueueUpdated:
    items = tuple(
        m.QueueItem(target_id=t.target_id, kind="hole", grid_name="g1", label="h", status=s)  # type: ignore[arg-type]
        for t, s in zip(found, statuses, strict=True)
    )
    return m.QueueUpdated(run_id=RUN, session_id=SID, items=items, counts={})


async def test_holes_found_costs_the_same_for_ten_or_three_hundred(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    projector = await seeded(sessions)
    costs = []
    for n in (10, 300):
        found = holes(n)
        with statements(sessions) as seen:
            await projector.event(m.HolesFound(run_id=RUN, grid_id=GID, square_id=GID, holes=found))
        costs.append(len(seen))
        async with sessions() as db:
            stored = await db.scalars(
                select(Target.id).where(Target.id.in_([t.target_id for t in found]))
            )
            assert len(stored.all()) == n
    assert costs[0] == costs[1] <= 6, costs
    again = holes(3)
    await projector.event(m.HolesFound(run_id=RUN, grid_id=GID, square_id=GID, holes=again))
    await projector.event(
        m.HolesFound(run_id=RUN, grid_id=GID, square_id=GID, holes=again[:2] + holes(1))
    )
    async with sessions() as db:
        assert await db.scalar(select(Target.id).where(Target.id == again[0].target_id))


async def test_a_queue_update_writes_only_what_changed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    projector = await seeded(sessions)
    found = holes(40)
    await projector.event(m.HolesFound(run_id=RUN, grid_id=GID, square_id=GID, holes=found))
    first = ["acquiring"] + ["queued"] * 39
    with statements(sessions) as seen:
        await projector.event(queue(found, first))
    updates = [s for s in seen if s.upper().startswith("UPDATE TARGETS")]
    assert len(updates) == 2, "one statement per status, not one per target"
    after = ["done", "acquiring"] + ["queued"] * 38  # the next acquisition: two changed
    with statements(sessions) as seen:
        await projector.event(queue(found, after))
    updates = [s for s in seen if s.upper().startswith("UPDATE TARGETS")]
    assert len(updates) == 2
    async with sessions() as db:
        status = dict((await db.execute(select(Target.id, Target.status))).all())
    assert status[found[0].target_id] == "done" and status[found[1].target_id] == "acquiring"
    assert [status[t.target_id] for t in found[2:]] == ["queued"] * 38
