"""Worker heartbeats: each service process says it is alive every few seconds.

session-api projects them into its ``workers`` table; the operations page lists them with
their age, so a worker that hangs or dies shows up as stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from proto.bus.base import Bus, BusObserver, NullObserver, Outcome
from proto.errors import BusUnavailable
from proto.messages.worker import WorkerHeartbeat

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0


class CountingObserver:
    """Counts the deliveries a process handled (outcome ``ok``) per queue, passing everything
    on."""

    def __init__(self, inner: BusObserver | None = None) -> None:
        self.inner: BusObserver = inner or NullObserver()
        self.by_queue: Counter[str] = Counter()

    def published(self, exchange: str) -> None:
        self.inner.published(exchange)

    def handled(self, queue: str, outcome: Outcome, seconds: float) -> None:
        if outcome == "ok":
            self.by_queue[queue] += 1
        self.inner.handled(queue, outcome, seconds)

    def count_for(self, service: str) -> int:
        """Deliveries from ``service``'s queues (``<service>.…``, ``transient.<service>…``):
        what that service handled, also where services share a process and its bus."""
        own = (f"{service}.", f"transient.{service}")
        return sum(n for queue, n in self.by_queue.items() if queue.startswith(own))


@asynccontextmanager
async def heartbeats(
    bus: Bus,
    service: str,
    *,
    interval_s: float = HEARTBEAT_S,
    counter: CountingObserver | None = None,
    instance: str | None = None,
) -> AsyncIterator[None]:
    """Publish a :class:`WorkerHeartbeat` now and every ``interval_s`` while inside.

    A failed publish (broker away) is logged and tried again next time; it never ends the
    worker. ``instance`` defaults to ``<host>:<pid>`` (embedded services share one pid, so
    they pass their own)."""
    host = socket.gethostname()
    started = datetime.now(UTC)
    name = instance or f"{host}:{os.getpid()}"

    async def beat() -> None:
        message = WorkerHeartbeat(
            service=service,
            instance=name,
            host=host,
            pid=os.getpid(),
            started_at=started,
            interval_s=interval_s,
            handled=counter.count_for(service) if counter else 0,
        )
        try:
            await bus.publish(message)
        except BusUnavailable as exc:
            log.warning("could not send the %s heartbeat: %s", service, exc)

    async def forever() -> None:
        while True:
            await asyncio.sleep(interval_s)  # a period, not a wait for an event
            await beat()

    await beat()
    task = asyncio.create_task(forever(), name=f"{service} heartbeat")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
