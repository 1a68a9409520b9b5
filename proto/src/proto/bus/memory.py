"""``MemoryBus``: the in-process bus for the embedded mode and fast tests.

Same topology, real topic matching, a JSON round trip on every delivery, the same
retry/dead-letter policy as RabbitMQ, and :meth:`MemoryBus.drain` to wait for quiescence.
It cannot cross processes; its lease registry lives in :mod:`proto.lease.memory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Self

from proto.bus.base import (
    BusObserver,
    Consumer,
    DeadLetter,
    Handler,
    M,
    NullObserver,
    QueueStats,
)
from proto.errors import BusUnavailable
from proto.messages.base import Message
from proto.topology import DLX, EXCHANGES, WORK_QUEUES, QueueSpec, topic_matches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Envelope:
    exchange: str
    routing_key: str
    type: str
    body: bytes
    message_id: str | None = None
    attempt: int = 1
    reason: str = ""
    dead_at: datetime | None = None


@dataclass
class _Queue:
    spec: QueueSpec
    items: asyncio.Queue[Envelope] = field(default_factory=asyncio.Queue)
    consumers: int = 0


class _Worker:
    """One consumer's task; it is only ever cancelled while waiting, never mid-handler."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.busy = False
        self.closing = False

    async def stop(self) -> None:
        self.closing = True
        assert self.task is not None
        if not self.busy:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class _MemorySubscription:
    def __init__(self, bus: MemoryBus, spec: QueueSpec, worker: _Worker) -> None:
        self._bus, self._spec, self._worker = bus, spec, worker

    async def close(self) -> None:
        await self._worker.stop()
        if not self._spec.durable:
            self._bus._drop_queue(self._spec.name)


class MemoryBus:
    """An in-memory :class:`proto.bus.base.Bus`."""

    def __init__(self, namespace: str = "", observer: BusObserver | None = None) -> None:
        self.namespace = namespace
        self.observer: BusObserver = observer or NullObserver()
        self._bindings: dict[str, list[tuple[str, str]]] = {x: [] for x in EXCHANGES}
        self._queues: dict[str, _Queue] = {}
        self._pending: list[tuple[QueueSpec, Consumer]] = []
        self._workers: list[_Worker] = []
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._entered = False
        self.dead: list[DeadLetter] = []
        """Every message dead-lettered on this bus, in order (also kept in ``dlq.*``)."""

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        for spec in WORK_QUEUES:
            self._declare(spec)
        for spec, consumer in self._pending:
            self._workers.append(self._start(spec, consumer))
        self._entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        for worker in self._workers:
            await worker.stop()
        self._workers.clear()
        self._entered = False

    # --- topology -----------------------------------------------------------------------

    def _declare(self, spec: QueueSpec) -> _Queue:
        q = self._queues.get(spec.name)
        if q is None:
            q = self._queues[spec.name] = _Queue(spec)
            for exchange, key in spec.bindings:
                self._bindings[exchange].append((key, spec.name))
            if spec.durable:
                dlq = QueueSpec(spec.dlq, exchange=DLX, keys=(spec.name,), durable=True)
                self._declare_dlq(dlq)
        return q

    def _declare_dlq(self, spec: QueueSpec) -> None:
        if spec.name not in self._queues:
            self._queues[spec.name] = _Queue(spec)
            self._bindings[DLX].append((spec.name, spec.name))

    def _drop_queue(self, name: str) -> None:
        self._queues.pop(name, None)
        for exchange, bindings in self._bindings.items():
            self._bindings[exchange] = [b for b in bindings if b[1] != name]

    # --- publishing ---------------------------------------------------------------------

    async def publish(self, message: Message) -> None:
        body = message.model_dump_json().encode()
        envelope = Envelope(
            message.exchange, message.key(), message.routing_key, body, str(message.message_id)
        )
        self._route(envelope)
        self.observer.published(message.exchange)

    async def publish_raw(
        self, exchange: str, routing_key: str, body: bytes, *, type: str = ""
    ) -> None:
        self._route(Envelope(exchange, routing_key, type, body))
        self.observer.published(exchange)

    def _route(self, envelope: Envelope) -> None:
        if envelope.exchange not in self._bindings:
            raise BusUnavailable(f"no exchange {envelope.exchange!r}")
        targets = {
            queue
            for key, queue in self._bindings[envelope.exchange]
            if topic_matches(key, envelope.routing_key)
        }
        if not targets:
            raise BusUnavailable(
                f"unroutable: nothing is bound to {envelope.exchange} {envelope.routing_key!r}"
            )
        for name in sorted(targets):
            self._put(self._queues[name], envelope)

    def _put(self, q: _Queue, envelope: Envelope) -> None:
        if q.consumers:
            self._busy += 1
            self._idle.clear()
        q.items.put_nowait(envelope)

    # --- consuming ----------------------------------------------------------------------

    def on(self, queue: QueueSpec, model: type[M], handler: Handler[M]) -> None:
        if self._entered:
            raise RuntimeError("on() registers before the bus is entered; use subscribe()")
        self._pending.append((queue, Consumer(queue, model, handler, self.observer)))

    async def subscribe(
        self, queue: QueueSpec, model: type[M], handler: Handler[M]
    ) -> _MemorySubscription:
        if not self._entered:
            raise RuntimeError("subscribe() needs an entered bus")
        consumer = Consumer(queue, model, handler, self.observer)
        worker = self._start(queue, consumer)
        self._workers.append(worker)
        return _MemorySubscription(self, queue, worker)

    def _start(self, spec: QueueSpec, consumer: Consumer) -> _Worker:
        q = self._declare(spec)
        # Messages that waited for a consumer now count towards quiescence.
        waiting = q.items.qsize() if q.consumers == 0 else 0
        q.consumers += 1
        if waiting:
            self._busy += waiting
            self._idle.clear()
        worker = _Worker()
        worker.task = asyncio.create_task(
            self._consume(q, consumer, worker), name=f"consume {spec.name}"
        )
        return worker

    async def _consume(self, q: _Queue, consumer: Consumer, worker: _Worker) -> None:
        try:
            while not worker.closing:
                envelope = await q.items.get()
                worker.busy = True
                try:
                    await self._handle(q, consumer, envelope)
                finally:
                    worker.busy = False
                    self._done()
        finally:
            q.consumers -= 1

    async def _handle(self, q: _Queue, consumer: Consumer, envelope: Envelope) -> None:
        started = time.perf_counter()
        outcome, reason = await consumer.deliver(envelope.body, envelope.type, envelope.attempt)
        if outcome == "retry":
            self._put(q, replace(envelope, attempt=envelope.attempt + 1))
        elif outcome == "dead_lettered":
            self._dead_letter(q.spec, envelope, reason)
        consumer.report(outcome, started)

    def _dead_letter(self, spec: QueueSpec, envelope: Envelope, reason: str) -> None:
        log.error("dead-lettered a message from %s: %s", spec.name, reason)
        dead = replace(envelope, reason=reason, dead_at=datetime.now(UTC))
        self.dead.append(_letter(spec.name, dead))
        dlq = self._queues.get(spec.dlq)
        if dlq is not None:
            dlq.items.put_nowait(dead)

    def _done(self) -> None:
        self._busy -= 1
        if self._busy <= 0:
            self._busy = 0
            self._idle.set()

    # --- inspection ---------------------------------------------------------------------

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every consumed queue is empty and no handler runs.

        Raises:
            TimeoutError: if that does not happen within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                # Let handlers that were just woken publish their follow-ups.
                for _ in range(3):
                    await asyncio.sleep(0)
                if self._idle.is_set():
                    return

    async def dead_letters(self, queue: QueueSpec, limit: int | None = None) -> list[DeadLetter]:
        dlq = self._queues.get(queue.dlq)
        if dlq is None:
            return []
        held = _take_all(dlq)
        for envelope in held:
            dlq.items.put_nowait(envelope)
        return [_letter(queue.name, e) for e in held[:limit]]

    async def replay_dead_letter(self, queue: QueueSpec, key: str) -> bool:
        found = self._remove_letter(queue, key)
        if found is None:
            return False
        fresh = replace(found, attempt=1, reason="", dead_at=None)
        self._put(self._declare(queue), fresh)
        return True

    async def discard_dead_letter(self, queue: QueueSpec, key: str) -> bool:
        return self._remove_letter(queue, key) is not None

    def _remove_letter(self, queue: QueueSpec, key: str) -> Envelope | None:
        dlq = self._queues.get(queue.dlq)
        if dlq is None:
            return None
        found = None
        for envelope in _take_all(dlq):
            if found is None and _letter(queue.name, envelope).key == key:
                found = envelope
            else:
                dlq.items.put_nowait(envelope)
        return found

    async def purge_dead_letters(self, queue: QueueSpec) -> int:
        """Drop every message in ``dlq.<queue>``; returns how many."""
        dlq = self._queues.get(queue.dlq)
        if dlq is None:
            return 0
        return len(_take_all(dlq))

    async def queue_stats(self) -> list[QueueStats]:
        stats = []
        for spec in WORK_QUEUES:
            for name in (spec.name, spec.dlq):
                q = self._queues.get(name)
                if q is not None:
                    stats.append(QueueStats(name, q.items.qsize(), q.consumers))
        return stats


def _take_all(q: _Queue) -> list[Envelope]:
    items = []
    while not q.items.empty():
        items.append(q.items.get_nowait())
    return items


def _letter(queue: str, e: Envelope) -> DeadLetter:
    return DeadLetter(
        queue, e.routing_key, e.type, e.body, e.reason, e.attempt, e.message_id, e.dead_at
    )
