"""The ``Bus`` protocol and the delivery policy both implementations share.

Policy, the same on both buses (STYLE.md §6):

* body not JSON, or not valid for its model → dead-lettered at once with the reason;
* handler raises ``PermanentError`` → dead-lettered at once with the reason;
* handler raises anything else → requeued; the ``DELIVERY_LIMIT``-th failure is dead-lettered
  with the last error as the reason;
* a ``message_id`` this consumer has handled already → acknowledged, handler not called;
* an unknown message type on a wildcard subscription → acknowledged and ignored (a newer
  producer during a rolling deploy).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, Self, TypeVar
from uuid import UUID

from pydantic import ValidationError

from proto.errors import PermanentError
from proto.messages.base import Message, model_for
from proto.topology import QueueSpec

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Handler = Callable[[M], Awaitable[None]]
Outcome = Literal["ok", "duplicate", "ignored", "retry", "dead_lettered"]

REASON_HEADER = "x-gridpilot-reason"
QUEUE_HEADER = "x-gridpilot-queue"
ATTEMPTS_HEADER = "x-gridpilot-attempts"
DEAD_AT_HEADER = "x-gridpilot-dead-at"


@dataclass(frozen=True)
class DeadLetter:
    """A message that was given up on, with why."""

    queue: str
    routing_key: str
    type: str
    body: bytes
    reason: str
    attempts: int
    message_id: str | None = None
    dead_at: datetime | None = None

    @property
    def key(self) -> str:
        """How operators name this letter: its message id, else a digest of its body
        (malformed messages may have no id)."""
        return self.message_id or letter_key(self.body)


def letter_key(body: bytes) -> str:
    return "sha256-" + hashlib.sha256(body).hexdigest()[:16]


@dataclass(frozen=True)
class QueueStats:
    """One durable queue as the broker sees it now: messages ready and consumers attached."""

    queue: str
    messages: int
    consumers: int


class BusObserver(Protocol):
    """Receives bus counts; services map them onto their Prometheus metrics."""

    def published(self, exchange: str) -> None: ...

    def handled(self, queue: str, outcome: Outcome, seconds: float) -> None: ...


class NullObserver:
    def published(self, exchange: str) -> None:
        return None

    def handled(self, queue: str, outcome: Outcome, seconds: float) -> None:
        return None


class Subscription(Protocol):
    """A consumer started after the bus was entered; ``close`` stops it and drops its queue."""

    async def close(self) -> None: ...


class Bus(Protocol):
    """Publish messages and consume queues; the same contract on RabbitMQ and in memory."""

    namespace: str

    async def publish(self, message: Message) -> None:
        """Publish and wait for the broker's confirm. Raises ``BusUnavailable`` on failure."""
        ...

    async def publish_raw(
        self, exchange: str, routing_key: str, body: bytes, *, type: str = ""
    ) -> None:
        """Publish bytes as they are (replaying dead letters, testing malformed input)."""
        ...

    def on(self, queue: QueueSpec, model: type[M], handler: Handler[M]) -> None:
        """Consume ``queue`` from entry on; ``model`` ``Message`` dispatches by type."""
        ...

    async def subscribe(
        self, queue: QueueSpec, model: type[M], handler: Handler[M]
    ) -> Subscription:
        """Consume ``queue`` now (the bus must be entered), until the subscription closes."""
        ...

    async def dead_letters(self, queue: QueueSpec, limit: int | None = None) -> list[DeadLetter]:
        """The messages waiting in ``dlq.<queue>``, oldest first (the first ``limit``), left
        in place."""
        ...

    async def replay_dead_letter(self, queue: QueueSpec, key: str) -> bool:
        """Put the letter named ``key`` back on ``queue`` (as new: attempts start again) and
        take it out of ``dlq.<queue>``; False when no such letter waits there."""
        ...

    async def discard_dead_letter(self, queue: QueueSpec, key: str) -> bool:
        """Drop the letter named ``key`` from ``dlq.<queue>``; False when it is not there."""
        ...

    async def purge_dead_letters(self, queue: QueueSpec) -> int:
        """Drop every message in ``dlq.<queue>``; returns how many."""
        ...

    async def queue_stats(self) -> list[QueueStats]:
        """Every durable work queue and its dead-letter queue: depth and consumers now."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...


class SeenIds:
    """A bounded memory of handled message ids, for idempotent consumers."""

    def __init__(self, size: int = 10_000) -> None:
        self._ids: OrderedDict[UUID, None] = OrderedDict()
        self._size = size

    def __contains__(self, message_id: UUID) -> bool:
        return message_id in self._ids

    def add(self, message_id: UUID) -> None:
        self._ids[message_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)


@dataclass
class Consumer:
    """One handler on one queue, with the shared delivery policy."""

    queue: QueueSpec
    model: type[Message]
    handler: Callable[[Any], Awaitable[None]]
    observer: BusObserver = field(default_factory=NullObserver)
    seen: SeenIds = field(default_factory=SeenIds)

    async def deliver(self, body: bytes, type_: str, attempt: int) -> tuple[Outcome, str]:
        """Decode, validate and handle one delivery; ``attempt`` counts from 1.

        Returns the outcome and, for dead letters, the reason. Never raises. The bus enacts
        the outcome (ack, requeue, dead-letter) and then calls :meth:`report`.
        """
        return await self._deliver(body, type_, attempt)

    def report(self, outcome: Outcome, started: float) -> None:
        """Tell the observer how a delivery ended, once the bus has enacted it."""
        self.observer.handled(self.queue.name, outcome, time.perf_counter() - started)

    async def _deliver(self, body: bytes, type_: str, attempt: int) -> tuple[Outcome, str]:
        try:
            raw = json.loads(body)
        except ValueError as exc:
            return "dead_lettered", f"malformed message: body is not JSON ({exc})"
        model: type[Message] | None = self.model
        if self.model is Message:
            model = model_for(type_)
            if model is None:
                log.debug("ignoring unknown message type %r on %s", type_, self.queue.name)
                return "ignored", ""
        assert model is not None
        try:
            message = model.model_validate(raw)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) or "<body>" for e in exc.errors())
            return "dead_lettered", f"malformed message: invalid {model.__name__} ({fields})"
        if message.message_id in self.seen:
            return "duplicate", ""
        try:
            await self.handler(message)
        except PermanentError as exc:
            return "dead_lettered", f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            if attempt >= self.queue.delivery_limit:
                return "dead_lettered", f"failed {attempt} times, last: {exc!r}"
            log.warning(
                "handler on %s failed (attempt %d of %d); will retry: %r",
                self.queue.name,
                attempt,
                self.queue.delivery_limit,
                exc,
            )
            return "retry", ""
        self.seen.add(message.message_id)
        return "ok", ""
