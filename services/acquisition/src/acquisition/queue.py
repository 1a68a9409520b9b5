"""A run's queue of targets: what comes next, and what the queue panel shows."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from proto.messages import QueueItem, Target
from proto.messages.image import TargetStatus

SHOWN = 50
"""Entries the queue panel gets at most (counts cover everything)."""


@dataclass
class Entry:
    target: Target
    grid_name: str
    status: TargetStatus = "queued"

    def item(self) -> QueueItem:
        t = self.target
        ice = f", ice {t.ice_nm:.0f} nm" if t.ice_nm is not None else ""
        label = f"{t.kind} {t.target_id.hex[:6]} · {t.cls}{ice}"
        return QueueItem(
            target_id=t.target_id,
            kind=t.kind,
            grid_name=self.grid_name,
            label=label,
            status=self.status,
        )


class RunQueue:
    """Ordered targets of the current grid. Holes of a square go before the next square."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.exposures = 0

    def add(self, targets: list[Target], grid_name: str, *, front: bool = False) -> list[Target]:
        """Queue targets not already queued; returns the ones added."""
        active = {e.target.target_id for e in self.entries if e.status in ("queued", "acquiring")}
        new = [Entry(t, grid_name) for t in targets if t.target_id not in active]
        if front:
            at = next(
                (i for i, e in enumerate(self.entries) if e.status == "queued"), len(self.entries)
            )
            self.entries[at:at] = new
        else:
            self.entries.extend(new)
        return [e.target for e in new]

    def remove(self, ids: set[UUID]) -> int:
        """Take queued targets out; returns how many."""
        n = 0
        for e in self.entries:
            if e.target.target_id in ids and e.status == "queued":
                e.status, n = "removed", n + 1
        return n

    def next(self) -> Entry | None:
        """The next queued entry, marked acquiring; ``None`` when the grid's queue is empty."""
        for e in self.entries:
            if e.status == "queued":
                e.status = "acquiring"
                return e
        return None

    def has_queued(self) -> bool:
        return any(e.status == "queued" for e in self.entries)

    def clear_grid(self) -> None:
        """Forget the finished grid's entries (its targets stay in the database)."""
        self.entries = []

    def items(self) -> tuple[QueueItem, ...]:
        upcoming = [e for e in self.entries if e.status in ("acquiring", "queued")]
        recent = [e for e in self.entries if e.status not in ("acquiring", "queued")][-5:]
        return tuple(e.item() for e in (recent + upcoming)[:SHOWN])

    def counts(self) -> dict[str, int]:
        counts = {"queued": 0, "acquiring": 0, "done": 0, "removed": 0, "failed": 0, "skipped": 0}
        for e in self.entries:
            counts[e.status] = counts.get(e.status, 0) + 1
        counts["squares_queued"] = sum(
            1 for e in self.entries if e.status == "queued" and e.target.kind == "square"
        )
        counts["holes_queued"] = sum(
            1 for e in self.entries if e.status == "queued" and e.target.kind == "hole"
        )
        counts["exposures"] = self.exposures
        return counts
