"""A bus observer that lets a test wait for outcomes (dead-lettered, duplicate, …)."""

from __future__ import annotations

import asyncio
from collections import Counter

from proto.bus.base import Outcome


class RecordingObserver:
    def __init__(self) -> None:
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.published_to: Counter[str] = Counter()
        self._changed = asyncio.Condition()
        self._loop = asyncio.get_running_loop()

    def published(self, exchange: str) -> None:
        self.published_to[exchange] += 1

    def handled(self, queue: str, outcome: Outcome, seconds: float) -> None:
        self.outcomes[(queue, outcome)] += 1
        self._loop.create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def count(self, queue: str, outcome: Outcome) -> int:
        return self.outcomes[(queue, outcome)]

    async def wait(self, queue: str, outcome: Outcome, n: int = 1, timeout: float = 15) -> None:
        """Until ``queue`` has had ``n`` deliveries end in ``outcome``."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.count(queue, outcome) >= n)
