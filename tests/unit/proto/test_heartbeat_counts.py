"""Heartbeats report what each service handled, also where services share one process and
one bus (the embedded stack): each counts its own queues, not the process's deliveries."""

from __future__ import annotations

import asyncio
import uuid

from proto import messages as m
from proto.bus.base import NullObserver, Outcome
from proto.bus.memory import MemoryBus
from proto.heartbeat import CountingObserver, heartbeats
from proto.topology import ACQUISITION_COMMANDS, EVENTS, PROCESSING_FINDERS, transient_queue


class Handled(NullObserver):
    """Wakes a waiter after each delivery handled."""

    def __init__(self) -> None:
        self.total = 0
        self.changed = asyncio.Event()

    def handled(self, queue: str, outcome: Outcome, seconds: float) -> None:
        self.total += 1
        self.changed.set()

    async def reach(self, n: int) -> None:
        async with asyncio.timeout(10):
            while self.total < n:
                self.changed.clear()
                await self.changed.wait()


async def ok(_message: m.Message) -> None:
    return None


async def test_each_service_sharing_a_bus_counts_its_own_queues() -> None:
    seen = Handled()
    counter = CountingObserver(seen)
    async with MemoryBus(namespace="heartbeat-counts", observer=counter) as bus:
        await bus.subscribe(ACQUISITION_COMMANDS, m.Message, ok)
        await bus.subscribe(PROCESSING_FINDERS, m.Message, ok)
        beats = transient_queue("test-beats", EVENTS, ("worker.#",))
        got: asyncio.Queue[m.WorkerHeartbeat] = asyncio.Queue()

        async def beat(message: m.WorkerHeartbeat) -> None:
            await got.put(message)

        await bus.subscribe(beats, m.WorkerHeartbeat, beat)
        run_id = uuid.uuid4()
        image = m.ImageRef(path="atlas.mrc", pixel_size_a=100.0, shape=(64, 64))
        for _ in range(2):
            atlas = m.AtlasAcquired(
                run_id=run_id, grid_id=uuid.uuid4(), atlas_id=uuid.uuid4(), image=image
            )
            await bus.publish(atlas)
        await bus.publish(m.StopRun(run_id=run_id, requested_by="operator"))
        await seen.reach(3)
        assert counter.count_for("processing") == 2
        assert counter.count_for("acquisition") == 1
        assert counter.count_for("session-api") == 0

        async with heartbeats(bus, "processing", interval_s=60, counter=counter):
            first = await asyncio.wait_for(got.get(), 10)
        assert first.service == "processing" and first.handled == 2
