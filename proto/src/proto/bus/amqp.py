"""``AmqpBus``: the bus on RabbitMQ (the only module, with ``proto.lease.amqp``, that
imports aio-pika).

``connect_robust``; a confirm channel with ``mandatory`` publishes that raise when
unroutable; persistent JSON with ``type`` = message type, ``message_id`` and
``correlation_id`` = run id; quorum work queues with delivery limit 5 dead-lettering to
``dlq.<queue>``; every name prefixed by ``namespace`` so tests never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Self

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from proto.bus.base import (
    ATTEMPTS_HEADER,
    DEAD_AT_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
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
from proto.settings import AmqpSettings
from proto.topology import DLX, EXCHANGES, WORK_QUEUES, QueueSpec

log = logging.getLogger(__name__)


class _AmqpSubscription:
    def __init__(self, queue: AbstractQueue, tag: str, durable: bool) -> None:
        self._queue, self._tag, self._durable = queue, tag, durable

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._queue.cancel(self._tag)
            if not self._durable:
                await self._queue.delete(if_unused=False, if_empty=False)


class AmqpBus:
    """A :class:`proto.bus.base.Bus` on RabbitMQ."""

    def __init__(
        self,
        settings: AmqpSettings,
        *,
        service: str,
        namespace: str | None = None,
        observer: BusObserver | None = None,
        delete_on_exit: bool = False,
    ) -> None:
        self.settings = settings
        self.service = service
        self.namespace = settings.namespace if namespace is None else namespace
        self.observer: BusObserver = observer or NullObserver()
        self.delete_on_exit = delete_on_exit
        self._pending: list[tuple[QueueSpec, Consumer]] = []
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declared: set[str] = set()

    def name(self, base: str) -> str:
        """The broker-side name of an exchange or queue (namespace-prefixed)."""
        return f"{self.namespace}.{base}" if self.namespace else base

    def _base(self, name: str) -> str:
        prefix = f"{self.namespace}." if self.namespace else ""
        return name[len(prefix) :] if prefix and name.startswith(prefix) else name

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            self._connection = await aio_pika.connect_robust(
                self.settings.url.get_secret_value(),
                client_properties={
                    "connection_name": f"{self.service} {socket.gethostname()}:{os.getpid()}"
                },
                heartbeat=self.settings.heartbeat,
            )
        except (OSError, aiormq.exceptions.AMQPError) as exc:
            raise BusUnavailable(f"cannot reach RabbitMQ: {exc!r}") from exc
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=self.settings.prefetch)
        self._channel = channel
        for x in EXCHANGES:
            self._exchanges[x] = await channel.declare_exchange(
                self.name(x), aio_pika.ExchangeType.TOPIC, durable=True
            )
        for spec in WORK_QUEUES:
            await self._declare(spec)
        for spec, consumer in self._pending:
            await self._consume(spec, consumer)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is None:
            return
        if self.delete_on_exit and self._channel is not None and not self._channel.is_closed:
            await self._delete_topology()
        await self._connection.close()
        self._connection = None

    async def _delete_topology(self) -> None:
        assert self._channel is not None
        for name in sorted(self._declared):
            with contextlib.suppress(Exception):
                await self._channel.queue_delete(name)
        for x in EXCHANGES:
            with contextlib.suppress(Exception):
                await self._channel.exchange_delete(self.name(x))

    # --- topology -----------------------------------------------------------------------

    async def _declare(self, spec: QueueSpec) -> AbstractQueue:
        assert self._channel is not None
        name = self.name(spec.name)
        if spec.durable:
            dlq = await self._channel.declare_queue(
                self.name(spec.dlq), durable=True, arguments={"x-queue-type": "quorum"}
            )
            await dlq.bind(self._exchanges[DLX], routing_key=name)
            self._declared.add(self.name(spec.dlq))
            queue = await self._channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-delivery-limit": spec.delivery_limit,
                    "x-dead-letter-exchange": self.name(DLX),
                    "x-dead-letter-routing-key": name,
                },
            )
        else:
            queue = await self._channel.declare_queue(name, exclusive=True, auto_delete=True)
        for exchange, key in spec.bindings:
            await queue.bind(self._exchanges[exchange], routing_key=key)
        self._declared.add(name)
        return queue

    # --- publishing ---------------------------------------------------------------------

    async def publish(self, message: Message) -> None:
        await self._publish(
            message.exchange,
            message.key(),
            aio_pika.Message(
                message.model_dump_json().encode(),
                content_type="application/json",
                type=message.routing_key,
                message_id=str(message.message_id),
                correlation_id=str(message.run_id) if message.run_id else None,
                timestamp=message.sent_at,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"schema_version": message.schema_version},
            ),
        )

    async def publish_raw(
        self, exchange: str, routing_key: str, body: bytes, *, type: str = ""
    ) -> None:
        await self._publish(
            exchange,
            routing_key,
            aio_pika.Message(body, type=type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        )

    async def _publish(self, exchange: str, key: str, message: aio_pika.Message) -> None:
        """Publish with confirm; while the connection is down, wait for it to come back for
        up to ``publish_retry_s`` (a retried message may arrive twice: consumers dedupe)."""
        if (exchange not in self._exchanges and exchange != "") or self._connection is None:
            raise BusUnavailable(f"no exchange {exchange!r} (is the bus entered?)")
        deadline = time.monotonic() + self.settings.publish_retry_s
        while True:
            try:
                target = (
                    self._exchanges[exchange]
                    if exchange
                    else self._channel_or_fail().default_exchange
                )
                await target.publish(message, routing_key=key, mandatory=True)
                break
            except aiormq.exceptions.PublishError as exc:
                raise BusUnavailable(f"unroutable: nothing is bound to {exchange} {key!r}") from exc
            except (aiormq.exceptions.AMQPError, OSError, RuntimeError) as exc:
                left = deadline - time.monotonic()
                if left <= 0 or self._connection.is_closed:
                    raise BusUnavailable(f"publish to {exchange} {key!r} failed: {exc!r}") from exc
                log.warning("publish to %s failed (%r); waiting for the broker", exchange, exc)
                try:
                    async with asyncio.timeout(left):
                        await self._connection.ready()
                        await self._channel_ready()
                except TimeoutError:
                    raise BusUnavailable(f"broker did not come back: {exc!r}") from exc
        self.observer.published(exchange)

    def _channel_or_fail(self) -> AbstractChannel:
        if self._channel is None:
            raise BusUnavailable("the bus is not entered")
        return self._channel

    async def _channel_ready(self) -> None:
        """After a reconnect, the robust channel is restored a moment after the connection."""
        assert self._channel is not None
        while self._channel.is_closed:
            await asyncio.sleep(0.05)  # aio-pika offers no event for a restored channel

    # --- consuming ----------------------------------------------------------------------

    def on(self, queue: QueueSpec, model: type[M], handler: Handler[M]) -> None:
        if self._connection is not None:
            raise RuntimeError("on() registers before the bus is entered; use subscribe()")
        self._pending.append((queue, Consumer(queue, model, handler, self.observer)))

    async def subscribe(
        self, queue: QueueSpec, model: type[M], handler: Handler[M]
    ) -> _AmqpSubscription:
        if self._channel is None:
            raise RuntimeError("subscribe() needs an entered bus")
        return await self._consume(queue, Consumer(queue, model, handler, self.observer))

    async def _consume(self, spec: QueueSpec, consumer: Consumer) -> _AmqpSubscription:
        queue = await self._declare(spec)
        attempts: dict[str, int] = {}

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            started = time.perf_counter()
            attempt = _attempt(incoming, attempts)
            outcome, reason = await consumer.deliver(incoming.body, incoming.type or "", attempt)
            if outcome == "retry":
                await incoming.nack(requeue=True)
            else:
                if incoming.message_id:
                    attempts.pop(incoming.message_id, None)
                if outcome == "dead_lettered":
                    await self._dead_letter(spec, incoming, reason, attempt)
                await incoming.ack()
            consumer.report(outcome, started)

        tag = await queue.consume(on_message)
        return _AmqpSubscription(queue, tag, spec.durable)

    async def _dead_letter(
        self, spec: QueueSpec, incoming: AbstractIncomingMessage, reason: str, attempt: int
    ) -> None:
        """Publish a copy to ``dlq.<queue>`` with the reason, before the original is acked."""
        log.error("dead-lettered a message from %s: %s", spec.name, reason)
        if not spec.durable:
            return
        headers: dict[str, Any] = dict(incoming.headers or {})
        headers.update({REASON_HEADER: reason, QUEUE_HEADER: spec.name, ATTEMPTS_HEADER: attempt})
        headers[DEAD_AT_HEADER] = datetime.now(UTC).isoformat()
        headers["x-gridpilot-routing-key"] = incoming.routing_key or ""
        await self._publish(
            DLX,
            self.name(spec.name),
            aio_pika.Message(
                incoming.body,
                type=incoming.type,
                message_id=incoming.message_id,
                correlation_id=incoming.correlation_id,
                content_type=incoming.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=headers,
            ),
        )

    # --- inspection ---------------------------------------------------------------------

    async def dead_letters(self, queue: QueueSpec, limit: int | None = None) -> list[DeadLetter]:
        """Read ``dlq.<queue>`` without consuming it (get, then requeue, on a side channel).

        The whole queue is read even with a ``limit``: a quorum queue puts back a partial read
        behind the rest, so only a full read keeps the order (dead-letter queues are short)."""
        assert self._connection is not None
        letters: list[DeadLetter] = []
        async with self._connection.channel() as channel:
            dlq = await channel.get_queue(self.name(queue.dlq), ensure=False)
            held: list[AbstractIncomingMessage] = []
            while (incoming := await dlq.get(no_ack=False, fail=False)) is not None:
                held.append(incoming)
                if limit is None or len(letters) < limit:
                    letters.append(_letter(queue.name, incoming))
            for incoming in held:
                await incoming.nack(requeue=True)
        return letters

    async def replay_dead_letter(self, queue: QueueSpec, key: str) -> bool:
        """Publish the letter to ``queue`` (default exchange: that queue only, not every
        binding of its original key), confirmed, then ack it out of the dead-letter queue."""

        async def replay(incoming: AbstractIncomingMessage) -> None:
            headers = {
                k: v
                for k, v in (incoming.headers or {}).items()
                if not k.startswith("x-gridpilot-") and k not in ("x-death", "x-delivery-count")
            }
            headers["x-gridpilot-replayed"] = 1
            await self._publish(
                "",
                self.name(queue.name),
                aio_pika.Message(
                    incoming.body,
                    type=incoming.type,
                    message_id=incoming.message_id,
                    correlation_id=incoming.correlation_id,
                    content_type=incoming.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers=headers,
                ),
            )

        return await self._take_letter(queue, key, replay)

    async def discard_dead_letter(self, queue: QueueSpec, key: str) -> bool:
        async def drop(_incoming: AbstractIncomingMessage) -> None:
            return None

        return await self._take_letter(queue, key, drop)

    async def _take_letter(
        self,
        queue: QueueSpec,
        key: str,
        action: Callable[[AbstractIncomingMessage], Awaitable[None]],
    ) -> bool:
        """Find the letter ``key`` in ``dlq.<queue>``, run ``action`` on it and ack it; every
        other letter read on the way goes back (nack + requeue), so nothing is lost."""
        if self._connection is None:
            raise BusUnavailable("the bus is not entered")
        async with self._connection.channel() as channel:
            dlq = await channel.get_queue(self.name(queue.dlq), ensure=False)
            held = []
            found = False
            try:
                # read to the end: what is put back then keeps its order (see dead_letters)
                while (incoming := await dlq.get(no_ack=False, fail=False)) is not None:
                    if not found and _letter(queue.name, incoming).key == key:
                        await action(incoming)
                        await incoming.ack()
                        found = True
                    else:
                        held.append(incoming)
            finally:
                for other in held:
                    await other.nack(requeue=True)
        return found

    async def purge_dead_letters(self, queue: QueueSpec) -> int:
        """Drop every message in ``dlq.<queue>``; returns how many."""
        assert self._channel is not None
        dlq = await self._channel.get_queue(self.name(queue.dlq), ensure=False)
        result = await dlq.purge()
        return int(result.message_count or 0)

    async def queue_stats(self) -> list[QueueStats]:
        """Depth (ready messages) and consumers of each durable queue, by passive declare."""
        if self._connection is None:
            raise BusUnavailable("the bus is not entered")
        stats = []
        async with self._connection.channel() as channel:
            for spec in WORK_QUEUES:
                for name in (spec.name, spec.dlq):
                    declared = await channel.declare_queue(self.name(name), passive=True)
                    ok = declared.declaration_result
                    stats.append(QueueStats(name, ok.message_count or 0, ok.consumer_count or 0))
        return stats


def _attempt(incoming: AbstractIncomingMessage, attempts: dict[str, int]) -> int:
    """This delivery's number, from the quorum queue's ``x-delivery-count`` where present."""
    count = (incoming.headers or {}).get("x-delivery-count")
    if isinstance(count, int):
        return count + 1
    if not incoming.message_id:
        return 2 if incoming.redelivered else 1
    attempts[incoming.message_id] = attempts.get(incoming.message_id, 0) + 1
    return attempts[incoming.message_id]


def _letter(queue: str, incoming: AbstractIncomingMessage) -> DeadLetter:
    headers = incoming.headers or {}
    death = headers.get("x-death")
    reason = headers.get(REASON_HEADER)
    if reason is None and isinstance(death, list) and death and isinstance(death[0], dict):
        reason = f"broker: {death[0].get('reason', 'dead-lettered')!s}"
    attempts = headers.get(ATTEMPTS_HEADER)
    dead_at = headers.get(DEAD_AT_HEADER)
    return DeadLetter(
        queue,
        str(headers.get("x-gridpilot-routing-key") or incoming.routing_key or ""),
        incoming.type or "",
        incoming.body,
        str(reason or "unknown"),
        attempts if isinstance(attempts, int) else 0,
        incoming.message_id,
        datetime.fromisoformat(dead_at) if isinstance(dead_at, str) else None,
    )
