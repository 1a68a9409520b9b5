"""What a run does with one entry of its queue: image a square and queue the holes found on
it, or take the plan's movies on a hole. Functions of the
:class:`acquisition.runloop.RunLoop` they serve.

Safe points (where a stop, a lost lease or a skip of the target takes effect): before each
stage move, before each movie, and while waiting for processing to find a square's holes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

from acquisition import commands
from acquisition.driver import DriverError
from acquisition.plan import pick
from acquisition.queue import Entry
from acquisition.waits import TargetSkipped
from proto import messages as m

if TYPE_CHECKING:
    from acquisition.runloop import RunLoop


async def acquire(run: RunLoop, entry: Entry, grid: m.GridSpec, out: Path, has_next: bool) -> None:
    """Acquire ``entry``; its status becomes done, failed or skipped."""
    t = entry.target
    run.skips.begin(entry)
    try:
        if t.kind == "square":
            await _square(run, t, grid, out)
        else:
            await _hole(run, t, grid, out, has_next)
        run.queue.mark(entry, "done")
    except TargetSkipped:
        run.queue.mark(entry, "skipped")
        run.info("%s %s skipped as asked by %s", t.kind, t.target_id.hex[:6], run.skips.by)
    except DriverError as exc:
        run.queue.mark(entry, "failed")
        if exc.fatal or not run.scope.connected:
            raise
        run.warn("%s %s skipped: %s", t.kind, t.target_id.hex[:6], exc)
    finally:
        late = run.skips.end()
    if late and entry.status == "done":
        run.info(
            "%s %s was finished before the skip asked by %s could take effect",
            t.kind,
            t.target_id.hex[:6],
            late,
        )


def _safe_point(run: RunLoop) -> None:
    run.safe_point()
    run.skips.check()


async def _square(run: RunLoop, square: m.Target, grid: m.GridSpec, out: Path) -> None:
    _safe_point(run)
    await run.scope.move_stage(square)
    _safe_point(run)
    ref = await run.scope.image_square(grid, square, out)
    expected = run.expect(square.target_id)
    await run.bus.publish(
        m.SquareAcquired(
            run_id=run.run_id, grid_id=grid.grid_id, square_id=square.target_id, image=ref
        )
    )
    holes = await run.await_finder(
        expected, f"holes on square {square.target_id.hex[:6]}", skip=run.skips.requested
    )
    run.known.update({t.target_id: t for t in holes})
    chosen = pick(holes, run.plan.holes_per_square, run.plan.ordering)
    usable = sum(1 for h in holes if h.cls == "good")
    run.info(
        "square %s: %d holes (%d usable); queued %d",
        square.target_id.hex[:6],
        len(holes),
        usable,
        len(chosen),
    )
    run.queue.add(chosen, grid.name, front=True)


async def _hole(run: RunLoop, hole: m.Target, grid: m.GridSpec, out: Path, has_next: bool) -> None:
    """The plan's movies on one hole, one stage move; a skip is honoured between movies."""
    shots = run.plan.exposures_per_hole
    for shot in range(1, shots + 1):
        await commands.disk_guard(run, grid, has_next)
        _safe_point(run)
        if shot == 1:
            await run.scope.move_stage(hole)
            _safe_point(run)
        await _exposure(run, hole, grid, out, f" ({shot} of {shots})" if shots > 1 else "")


async def _exposure(run: RunLoop, hole: m.Target, grid: m.GridSpec, out: Path, which: str) -> None:
    movie = await run.scope.expose(grid, hole, out)
    run.queue.exposures += 1
    ref = m.ImageRef(path=str(movie.path), pixel_size_a=movie.pixel_size_a, shape=movie.shape)
    await run.bus.publish(
        m.ExposureAcquired(
            run_id=run.run_id,
            grid_id=grid.grid_id,
            hole_id=hole.target_id,
            exposure_id=uuid4(),
            movie=ref,
            n_frames=movie.n_frames,
            dose_e_per_a2=movie.dose_e_per_a2,
            optics=run.scope.optics,
            detector=run.scope.detector,
        )
    )
    run.info(
        "exposure %d on hole %s%s → %s",
        run.queue.exposures,
        hole.target_id.hex[:6],
        which,
        movie.path.name,
    )
