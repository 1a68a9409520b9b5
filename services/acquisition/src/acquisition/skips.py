"""Skipping targets while a run goes (``run.skip_target``, ``run.skip_square``).

A queued target is skipped at once. The target being acquired is skipped at the run's next
safe point: before a stage move, between two movies of a hole, or while the run waits for
processing to find a square's holes — never in the middle of an exposure (the movie under
way is finished and handed to processing like any other).
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from acquisition.queue import Entry, RunQueue
from acquisition.waits import TargetSkipped
from proto.messages import Target


class Skips:
    """The skip requests of one run; the run loop holds one and marks its safe points."""

    def __init__(self) -> None:
        self.current: Entry | None = None
        self.requested = asyncio.Event()
        """Set when the target being acquired is to be skipped (its wait ends at once)."""
        self.by = ""

    def begin(self, entry: Entry) -> None:
        """``entry`` is being acquired now; an earlier request (for another target) is over."""
        self.current, self.by = entry, ""
        self.requested.clear()

    def end(self) -> str:
        """The acquisition of the current entry is over; returns who asked to skip it, if a
        request came too late to be honoured (it was finished first)."""
        late = self.by if self.requested.is_set() else ""
        self.current, self.by = None, ""
        self.requested.clear()
        return late

    def check(self) -> None:
        """A safe point: raise :class:`TargetSkipped` if the current target is to be skipped."""
        if self.requested.is_set():
            raise TargetSkipped()

    def target(self, queue: RunQueue, target_id: UUID, by: str) -> tuple[bool, str]:
        """Skip one target; returns whether anything was skipped, and the words for the log."""
        name = _name(queue, target_id)
        if self.current is not None and self.current.target.target_id == target_id:
            self._request(by)
            return True, (
                f"{by} asked to skip {name}, being acquired: skipped at the next safe point"
                " (an exposure under way is finished first)"
            )
        if queue.skip({target_id}):
            return True, f"{by} skipped {name} (queued)"
        return False, f"skip of {name} by {by} ignored: it is neither being acquired nor queued"

    def square(self, queue: RunQueue, square_id: UUID, by: str) -> tuple[bool, str]:
        """Skip what is left of a square: itself if queued or being imaged, its queued holes,
        and its hole being exposed."""
        skipped = queue.skip(queue.queued_holes_of(square_id) | {square_id})
        holes = sum(1 for e in skipped if e.target.kind == "hole")
        parts = []
        if any(e.target.kind == "square" for e in skipped):
            parts.append("the square (queued)")
        if holes:
            parts.append(f"{holes} queued hole{'' if holes == 1 else 's'}")
        current = self.current.target if self.current is not None else None
        if current is not None and square_id in (current.target_id, _square_of(current)):
            self._request(by)
            parts.append(f"the {current.kind} being acquired, at the next safe point")
        what = f"square {square_id.hex[:6]}"
        if not parts:
            return False, f"skip of the rest of {what} by {by} ignored: nothing of it is left"
        return True, f"{by} skipped the rest of {what}: {', '.join(parts)}"

    def _request(self, by: str) -> None:
        self.by = by
        self.requested.set()


def _square_of(target: Target) -> UUID | None:
    return target.parent_id if target.kind == "hole" else None


def _name(queue: RunQueue, target_id: UUID) -> str:
    kind = next((e.target.kind for e in queue.entries if e.target.target_id == target_id), "target")
    return f"{kind} {target_id.hex[:6]}"
