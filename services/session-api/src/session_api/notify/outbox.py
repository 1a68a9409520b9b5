"""What waits for each destination, and when it may go: coalescing, rate limit, retries.

Pure bookkeeping on a monotonic clock the caller passes in (seconds), so that tests can drive
it without waiting. For one destination:

- **coalescing** — the first notice of a burst waits ``coalesce_s``; whatever comes meanwhile
  goes in the same message (notices with the same key collapse into the newest);
- **rate limit** — a message goes at most every ``min_interval_s``; notices that come sooner
  wait and go together when the interval is over;
- **retries** — a failed message is tried again after ``retry_s``, then twice that, …, with
  whatever came meanwhile; after ``retries`` retries its notices are dropped (and counted);
- **bounded** — at most ``max_pending`` notices wait; beyond it the oldest are dropped.

One message per destination is in flight at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from session_api.notify.notices import Notice


@dataclass
class Batch:
    """Notices waiting for one destination."""

    notices: dict[str, Notice] = field(default_factory=dict)
    first_at: float = 0.0
    attempt: int = 0
    """Failed attempts of the oldest notices in it (0 for a fresh batch)."""
    not_before: float = 0.0


@dataclass(frozen=True)
class Due:
    destination_id: int
    notices: tuple[Notice, ...]
    attempt: int


@dataclass
class Outbox:
    coalesce_s: float
    min_interval_s: float
    retries: int
    retry_s: float
    max_pending: int
    batches: dict[int, Batch] = field(default_factory=dict)
    last_sent: dict[int, float] = field(default_factory=dict)
    in_flight: set[int] = field(default_factory=set)

    def add(self, destination_id: int, notice: Notice, now: float) -> int:
        """Queue ``notice``; returns how many waiting notices were dropped to make room."""
        batch = self.batches.get(destination_id)
        if batch is None:
            batch = self.batches[destination_id] = Batch(first_at=now)
        key = _key(notice)
        batch.notices.pop(key, None)  # the newest of a key goes last
        batch.notices[key] = notice
        return self._bound(batch)

    def _bound(self, batch: Batch) -> int:
        dropped = 0
        while len(batch.notices) > self.max_pending:
            batch.notices.pop(next(iter(batch.notices)))
            dropped += 1
        return dropped

    def due_at(self, destination_id: int) -> float | None:
        batch = self.batches.get(destination_id)
        if batch is None or not batch.notices or destination_id in self.in_flight:
            return None
        at = max(batch.first_at + self.coalesce_s, batch.not_before)
        last = self.last_sent.get(destination_id)
        if last is not None:
            at = max(at, last + self.min_interval_s)
        return at

    def next_due(self) -> float | None:
        times = [t for d in self.batches if (t := self.due_at(d)) is not None]
        return min(times) if times else None

    def take_due(self, now: float) -> list[Due]:
        """The messages to send now; each destination's is in flight until :meth:`done`."""
        out = []
        for destination_id in list(self.batches):
            at = self.due_at(destination_id)
            if at is None or at > now:
                continue
            batch = self.batches.pop(destination_id)
            self.in_flight.add(destination_id)
            self.last_sent[destination_id] = now
            notices = tuple(sorted(batch.notices.values(), key=lambda n: n.at))
            out.append(Due(destination_id, notices, batch.attempt))
        return out

    def done(self, due: Due, ok: bool, now: float) -> int:
        """Record an attempt's outcome; returns the notices dropped for good."""
        self.in_flight.discard(due.destination_id)
        if ok:
            return 0
        attempt = due.attempt + 1
        if attempt > self.retries:
            return len(due.notices)
        batch = self.batches.get(due.destination_id)
        if batch is None:
            batch = self.batches[due.destination_id] = Batch(first_at=now)
        merged = {_key(n): n for n in due.notices}
        for key, notice in batch.notices.items():  # what came meanwhile is newer
            merged.pop(key, None)
            merged[key] = notice
        batch.notices = merged
        batch.attempt = attempt
        batch.not_before = now + self.retry_s * 2 ** (attempt - 1)
        return self._bound(batch)

    def forget(self, destination_id: int) -> int:
        """A destination removed: its waiting notices go nowhere (returns how many)."""
        batch = self.batches.pop(destination_id, None)
        self.last_sent.pop(destination_id, None)
        return len(batch.notices) if batch else 0

    def pending(self, destination_id: int) -> int:
        batch = self.batches.get(destination_id)
        return len(batch.notices) if batch else 0


def _key(notice: Notice) -> str:
    return notice.key or f"{notice.title}@{notice.at.isoformat()}"
