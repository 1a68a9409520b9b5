"""A handler that records what it receives and lets a test wait for arrivals."""

from __future__ import annotations

import asyncio

from proto.messages import Message


class Inbox:
    """Collects what a handler receives; ``wait(n)`` waits for n arrivals."""

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.got: list[Message] = []
        self.calls = 0
        self._fail, self._error = fail, error
        self._cond = asyncio.Condition()

    async def __call__(self, message: Message) -> None:
        async with self._cond:
            self.calls += 1
            self._cond.notify_all()
        if self._error is not None:
            raise self._error
        if self.calls <= self._fail:
            raise RuntimeError(f"flaky failure {self.calls}")
        async with self._cond:
            self.got.append(message)
            self._cond.notify_all()

    async def wait(self, n: int = 1, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout), self._cond:
            await self._cond.wait_for(lambda: len(self.got) >= n)
