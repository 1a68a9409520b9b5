"""What a run does with the commands it is sent, and its prompts (pause between grids, disk).

Functions of the :class:`acquisition.runloop.RunLoop` they serve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from acquisition.waits import SkipGrid, interruptible
from proto import messages as m
from proto.messages.run import Choice
from proto.states import RunState

if TYPE_CHECKING:
    from acquisition.runloop import RunLoop


async def pump(run: RunLoop) -> None:
    """Apply commands as they arrive (stop, pause toggle, decisions, targets, skips)."""
    while True:
        command = await run.commands.get()
        if command.run_id != run.run_id:
            continue
        if isinstance(command, m.StopRun):
            await _on_stop(run, command)
        elif isinstance(command, m.SetPauseBetweenGrids):
            run.pause = command.enabled
            word = "on" if command.enabled else "off"
            run.info("pause between grids turned %s by %s", word, command.requested_by)
            await run.bus.publish(
                m.PauseBetweenGridsChanged(
                    run_id=run.run_id,
                    session_id=run.start.session_id,
                    enabled=command.enabled,
                    requested_by=command.requested_by,
                )
            )
        elif isinstance(command, m.DecideRun):
            if run.state != RunState.AWAITING_DECISION:
                run.warn("decision %s ignored: the run is %s", command.choice, run.state.label)
                continue
            run.decision = command.choice
            run.decided.set()
            await run.bus.publish(
                m.DecisionTaken(
                    run_id=run.run_id,
                    session_id=run.start.session_id,
                    choice=command.choice,
                    requested_by=command.requested_by,
                )
            )
        elif isinstance(command, m.AddTargets | m.RemoveTargets):
            await _on_targets(run, command)
        elif isinstance(command, m.SkipTarget | m.SkipSquare):
            await _on_skip(run, command)


async def _on_stop(run: RunLoop, command: m.StopRun) -> None:
    if run.stop.is_set():
        return
    run.stopped_by = command.requested_by
    run.info(
        "stop signal received from %s: the run ends after the current acquisition",
        command.requested_by,
    )
    await run.set_state(RunState.STOPPING, requested_by=command.requested_by)
    run.stop.set()


async def _on_targets(run: RunLoop, command: m.AddTargets | m.RemoveTargets) -> None:
    if isinstance(command, m.AddTargets):
        run.known.update({t.target_id: t for t in command.targets if t.target_id not in run.known})
    ids = set(command.target_ids)
    unknown = [i for i in ids if i not in run.known]
    if unknown:
        run.warn("%d target(s) are not known to this run; ignored", len(unknown))
    if isinstance(command, m.RemoveTargets):
        n = run.queue.remove(ids)
        run.info("%s took %d target(s) out of the queue", command.requested_by, n)
    else:
        grid = run.grid
        here = [
            run.known[i]
            for i in command.target_ids
            if i in run.known and grid is not None and run.known[i].grid_id == grid.grid_id
        ]
        elsewhere = len(ids) - len(unknown) - len(here)
        if elsewhere:
            run.warn("%d target(s) belong to another grid; queue them on their grid", elsewhere)
        added = run.queue.add(here, grid.name if grid else "")
        run.info("%s queued %d target(s)", command.requested_by, len(added))
    await run.publish_queue()


async def _on_skip(run: RunLoop, command: m.SkipTarget | m.SkipSquare) -> None:
    if isinstance(command, m.SkipTarget):
        done, words = run.skips.target(run.queue, command.target_id, command.requested_by)
    else:
        done, words = run.skips.square(run.queue, command.square_id, command.requested_by)
    if done:
        run.info("%s", words)
        await run.publish_queue()
    else:
        run.warn("%s", words)


async def prompt(
    run: RunLoop,
    grid: m.GridSpec,
    has_next: bool,
    cause: Literal["grid_done", "disk_low"],
    reason: str | None = None,
) -> Choice:
    """Ask *continue current grid* or *next grid*; re-ask at once when continuing cannot
    make progress (no targets queued). Stop ends the wait."""
    while True:
        run.decided.clear()
        run.decision = None
        # the state first: when the prompt is seen, a decision is already accepted
        await run.set_state(RunState.AWAITING_DECISION)
        await run.bus.publish(
            m.DecisionRequested(
                run_id=run.run_id,
                session_id=run.start.session_id,
                grid_id=grid.grid_id,
                grid_name=grid.name,
                has_next_grid=has_next,
                cause=cause,
                reprompt_reason=reason,
            )
        )
        if cause == "grid_done":
            run.info("grid %s: queue is empty; waiting for a decision", grid.name)
        await interruptible(run.decided.wait(), stop=run.stop, lost=run.lost)
        choice: Choice = run.decision or "continue_grid"
        if cause == "grid_done" and choice == "continue_grid" and not run.queue.has_queued():
            reason = (
                f"No targets are queued on grid {grid.name}: queue squares or holes, then continue."
            )
            run.warn("continue asked with nothing queued; asking again")
            continue
        await run.set_state(RunState.RUNNING)
        return choice


async def disk_guard(run: RunLoop, grid: m.GridSpec, has_next: bool) -> None:
    """Before an exposure: pause while a data volume is under its critical threshold."""
    asked = False
    while low := [v for v in run.scope.volumes() if v.level == "critical"]:
        words = ", ".join(f"{v.name} ({100 * (1 - v.used_fraction):.1f}% free)" for v in low)
        run.error("data volume critically low: %s; pausing before the next exposure", words)
        reason = (
            f"Still critically low: {words}. Free space on the volume, then continue."
            if asked
            else f"Data volume critically low: {words}."
        )
        asked = True
        if await prompt(run, grid, has_next, "disk_low", reason) == "next_grid":
            raise SkipGrid()
