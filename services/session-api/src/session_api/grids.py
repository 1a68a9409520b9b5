"""What a new run is told about each grid: an atlas an earlier run took, with its squares.

A restarted session resumes: grids already done are left out (:func:`begin_run`), and a grid
with an atlas gets it back with the squares found on it, those already imaged and what the
earlier run left queued there, so the run neither takes a second atlas (minutes at the scope,
and a second set of squares on the same grid) nor images a square again by itself, and goes on
with the holes and squares it had not reached.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proto import messages as m
from proto.api import QueueView
from session_api.db.models import Grid, Image, Target, const
from session_api.views import placement


async def grid_specs(db: AsyncSession, grids: Sequence[Grid]) -> tuple[m.GridSpec, ...]:
    atlas_ids = [g.atlas_id for g in grids if g.atlas_id is not None]
    atlases = {
        i.id: i for i in (await db.scalars(select(Image).where(Image.id.in_(atlas_ids)))).all()
    }
    squares: dict[uuid.UUID, list[Target]] = {a: [] for a in atlas_ids}
    for t in (
        await db.scalars(
            select(Target).where(Target.kind == "square", Target.parent_id.in_(atlas_ids))
        )
    ).all():
        squares[t.parent_id].append(t)
    queued: dict[uuid.UUID, list[Target]] = {g.id: [] for g in grids}
    for t in (
        await db.scalars(
            select(Target)
            .where(Target.grid_id.in_(list(queued)), Target.status == const("queued"))
            .order_by(Target.kind, Target.score.desc())  # "hole" < "square": holes first
        )
    ).all():
        queued[t.grid_id].append(t)
    return tuple(
        m.GridSpec(
            grid_id=g.id,
            name=g.name,
            position=g.position,
            atlas=_known(atlases[g.atlas_id], squares[g.atlas_id], queued[g.id])
            if g.atlas_id in atlases
            else None,
        )
        for g in grids
    )


def _known(atlas: Image, squares: list[Target], queued: list[Target]) -> m.KnownAtlas:
    return m.KnownAtlas(
        atlas_id=atlas.id,
        image=m.ImageRef(
            path=atlas.path,
            pixel_size_a=atlas.pixel_size_a,
            shape=(atlas.height, atlas.width),
            preview_path=atlas.preview_path,
        ),
        squares=tuple(target_message(t) for t in squares),
        imaged=frozenset(
            t.id
            for t in squares
            if t.status != "queued" and (t.image_id is not None or t.status == "done")
        ),
        queued=tuple(target_message(t) for t in queued),
    )


def target_message(t: Target) -> m.Target:
    """A stored square or hole as the run is told of it."""
    return m.Target(target_id=t.id, kind="hole" if t.kind == "hole" else "square", **placement(t))


async def waiting_queue(
    db: AsyncSession, session_id: uuid.UUID, run_id: uuid.UUID | None
) -> QueueView:
    """With no live run: what the session's next run goes on with (targets left queued by
    a stop, or queued by hand after an atlas-only run), in the order it takes them."""
    rows = (
        await db.execute(
            select(Target, Grid.name)
            .join(Grid, Grid.id == Target.grid_id)
            .where(Target.session_id == session_id, Target.status == "queued")
            .order_by(Grid.position, Target.kind, Target.score.desc())  # holes first
        )
    ).all()
    items = [
        m.QueueItem(
            target_id=t.id,
            kind="hole" if t.kind == "hole" else "square",
            grid_name=grid,
            label=f"{t.kind} {t.id.hex[:6]} · {t.cls}"
            + (f", ice {t.ice_nm:.0f} nm" if t.ice_nm is not None else ""),
            status="queued",
        )
        for t, grid in rows
    ]
    counts = {
        "queued": len(items),
        "squares_queued": sum(1 for i in items if i.kind == "square"),
        "holes_queued": sum(1 for i in items if i.kind == "hole"),
    }
    return QueueView(run_id=run_id, items=items, counts=counts)
