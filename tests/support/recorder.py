"""Record the messages a bus carries and wait for one, with a timeout (never a sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from proto.bus.base import Bus, Subscription
from proto.messages import Message
from proto.topology import EVENTS, LOGS, transient_queue

T = TypeVar("T", bound=Message)


class Recorder:
    """Every event and log record on the bus, in arrival order."""

    def __init__(self) -> None:
        self.seen: list[Message] = []
        self._changed = asyncio.Condition()
        self._sub: Subscription | None = None

    async def start(self, bus: Bus) -> Recorder:
        spec = transient_queue("test", EVENTS, ("#",), extra_bindings=((LOGS, "#"),))
        self._sub = await bus.subscribe(spec, Message, self._record)
        return self

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.close()

    async def _record(self, message: Message) -> None:
        async with self._changed:
            self.seen.append(message)
            self._changed.notify_all()

    def of(self, kind: type[T], where: Callable[[T], bool] = lambda _m: True) -> list[T]:
        return [m for m in self.seen if isinstance(m, kind) and where(m)]

    async def wait_for(
        self,
        kind: type[T],
        where: Callable[[T], bool] = lambda _m: True,
        *,
        timeout: float = 10.0,
        after: int = 0,
    ) -> T:
        """The first ``kind`` message at index ≥ ``after`` satisfying ``where``."""

        def found() -> Any:
            for m in self.seen[after:]:
                if isinstance(m, kind) and where(m):
                    return m
            return None

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
            result: T = found()
            return result
