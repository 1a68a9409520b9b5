"""A run's queue of targets: what comes next, and what the queue panel shows."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from proto.messages import QueueItem, Target
from proto.messages.image import TargetStatus

SHOWN = 50
"""Entries the queue panel gets at most (counts cover everything)."""


@dataclass(eq=False)
class Entry:
    """One queued target; compared by identity (a target may be queued again later)."""

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
        self._news: list[Entry] = []
        """Entries taken out (removed, skipped) since the queue was last shown: the next
        :meth:`items` carries them all, so each one's status reaches the database however
        many were taken out at once."""

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
        return len(self._take_out(ids, "removed"))

    def skip(self, ids: set[UUID]) -> list[Entry]:
        """Mark queued targets ``skipped``; returns them."""
        return self._take_out(ids, "skipped")

    def queued_holes_of(self, square_id: UUID) -> set[UUID]:
        """The queued holes found on ``square_id``."""
        return {
            e.target.target_id
            for e in self.entries
            if e.status == "queued" and e.target.kind == "hole" and e.target.parent_id == square_id
        }

    def _take_out(self, ids: set[UUID], status: TargetStatus) -> list[Entry]:
        out = [e for e in self.entries if e.target.target_id in ids and e.status == "queued"]
        for e in out:
            e.status = status
        self._news.extend(out)
        return out

    def mark(self, entry: Entry, status: TargetStatus) -> None:
        """Set the status of the entry being acquired (done, failed, skipped)."""
        entry.status = status
        self._news.append(entry)

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
        self._news = []

    def items(self) -> tuple[QueueItem, ...]:
        """What the queue panel shows (the latest finished entries, then what comes next),
        after every entry taken out since the last call."""
        upcoming = [e for e in self.entries if e.status in ("acquiring", "queued")]
        recent = [e for e in self.entries if e.status not in ("acquiring", "queued")][-5:]
        news = [e for e in dict.fromkeys(self._news) if e.status not in ("acquiring", "queued")]
        self._news = []
        shown = [e for e in recent + upcoming if e not in news][:SHOWN]
        return tuple(e.item() for e in news + shown)

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
