"""What an ended run leaves for the next one: a square cut short by a stop is queued again
(not 'acquiring' for ever, nor counted as imaged), the rest of its queue stays queued, and
the next run is told all of it, holes first; a grid the run moved on from keeps nothing
queued."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto import messages as m
from proto.states import RunState
from session_api.db.models import Grid, Image, Microscope, Run, Session, Target
from session_api.grids import grid_specs
from session_api.projection import Projector, apply_state


async def test_an_ended_run_leaves_its_queue_to_the_next(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    sid, gid, atlas, run_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    done, cut, fresh, hole = (uuid.uuid4() for _ in range(4))

    def target(tid: uuid.UUID, kind: str, parent: uuid.UUID, **kw: object) -> Target:
        return Target(
            id=tid,
            kind=kind,
            session_id=sid,
            grid_id=gid,
            parent_id=parent,
            y=1.0,
            x=2.0,
            size_px=3.0,
            cls="good",
            score=0.5,
            **kw,
        )

    async with sessions() as db:
        db.add(Microscope(id="k1", name="K1"))
        await db.flush()
        db.add(Session(id=sid, name="s", microscope_id="k1", created_by="t", live_run_id=run_id))
        await db.flush()
        db.add(Grid(id=gid, session_id=sid, name="g1", position=1, atlas_id=atlas))
        db.add(Image(id=atlas, kind="atlas", session_id=sid, grid_id=gid, path="a.mrc"))
        db.add(
            Run(
                id=run_id,
                session_id=sid,
                microscope_id="k1",
                number=1,
                state="stopping",
                requested_by="t",
                queue={
                    "items": [
                        {"target_id": str(done), "kind": "square", "status": "done"},
                        {"target_id": str(cut), "kind": "square", "status": "acquiring"},
                        {"target_id": str(hole), "kind": "hole", "status": "queued"},
                    ],
                    "counts": {"done": 1, "acquiring": 1, "queued": 1, "holes_queued": 1},
                },
            )
        )
        db.add(target(done, "square", atlas, status="done", image_id=done))
        db.add(target(cut, "square", atlas, status="acquiring", image_id=cut))
        db.add(target(fresh, "square", atlas))
        db.add(target(hole, "hole", done, status="queued"))
        await db.commit()

    async with sessions() as db:
        run = await db.get(Run, run_id)
        assert run is not None
        assert await apply_state(db, run, RunState.ENDED, "stopped", None)
        await db.commit()
    async with sessions() as db:
        assert (await db.get(Target, cut)).status == "queued"  # type: ignore[union-attr]
        run = await db.get(Run, run_id)
        assert run is not None and run.queue is not None
        assert run.queue["counts"] == {
            "done": 1,
            "queued": 2,
            "holes_queued": 1,
            "squares_queued": 1,
        }
        assert [i["status"] for i in run.queue["items"]] == ["done", "queued", "queued"]
        grid = await db.get(Grid, gid)
        assert grid is not None
        (spec,) = await grid_specs(db, [grid])
    assert spec.atlas is not None and spec.atlas.atlas_id == atlas
    assert {t.target_id for t in spec.atlas.squares} == {done, cut, fresh}
    assert spec.atlas.imaged == {done}, "the square cut short is imaged again"
    assert [t.target_id for t in spec.atlas.queued] == [hole, cut]
    assert spec.atlas.queued[0].kind == "hole"

    # a grid the run moves on from ("next grid") keeps nothing queued
    projector = Projector(sessions)
    await projector.event(m.GridFinished(run_id=run_id, grid_id=gid, grid_name="g1", exposures=0))
    async with sessions() as db:
        assert (await db.get(Target, hole)).status is None  # type: ignore[union-attr]
        assert (await db.get(Target, cut)).status is None  # type: ignore[union-attr]
        assert (await db.get(Target, done)).status == "done"  # type: ignore[union-attr]
