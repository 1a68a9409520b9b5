"""The processing backlog as a metric: how many images wait, seen by every worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from processing.metrics import ProcessingMetrics
from proto.bus.base import Bus
from proto.errors import BusUnavailable
from proto.topology import PROCESSING_FINDERS, PROCESSING_IMAGES

log = logging.getLogger(__name__)

QUEUES = (PROCESSING_IMAGES.name, PROCESSING_FINDERS.name)


async def sample_backlog(bus: Bus, metrics: ProcessingMetrics) -> None:
    """Read the depth of the processing queues once into the backlog gauge."""
    for s in await bus.queue_stats():
        if s.queue in QUEUES:
            metrics.backlog.labels(s.queue).set(s.messages)


@asynccontextmanager
async def watching_backlog(
    bus: Bus, metrics: ProcessingMetrics, interval_s: float
) -> AsyncIterator[None]:
    """Sample the backlog now and every ``interval_s`` while inside."""

    async def forever() -> None:
        while True:
            try:
                await sample_backlog(bus, metrics)
            except BusUnavailable as exc:
                log.warning("could not read the processing backlog: %s", exc)
            await asyncio.sleep(interval_s)  # a sampling period, not a wait for an event

    task = asyncio.create_task(forever(), name="processing backlog")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
