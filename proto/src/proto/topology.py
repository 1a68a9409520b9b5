"""Every exchange, queue, binding and dead-letter queue of Gridpilot, as data.

No exchange, queue or routing key is written as a literal anywhere else (STYLE.md §4).
Both buses declare this topology, prefixed by their ``namespace``, on start.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

COMMANDS = "screening.commands"
EVENTS = "screening.events"
LOGS = "screening.logs"
DLX = "screening.dlx"

EXCHANGES: tuple[str, ...] = (COMMANDS, EVENTS, LOGS, DLX)

DELIVERY_LIMIT = 5
"""Deliveries of one message before a failing handler's message is dead-lettered."""

LEASE_PREFIX = "lease.microscope."


@dataclass(frozen=True)
class QueueSpec:
    """One queue and what it is bound to.

    Durable work queues are quorum queues with a delivery limit and a dead-letter queue
    ``dlq.<name>`` bound to ``screening.dlx``; transient queues are exclusive and auto-delete,
    one per consumer connection (a UI page's log stream, a run's result inbox).
    """

    name: str
    exchange: str
    keys: tuple[str, ...]
    durable: bool = True
    delivery_limit: int = DELIVERY_LIMIT
    extra_bindings: tuple[tuple[str, str], ...] = field(default=())

    @property
    def dlq(self) -> str:
        """Name of this queue's dead-letter queue (``dlq.<name>``)."""
        return f"dlq.{self.name}"

    @property
    def bindings(self) -> tuple[tuple[str, str], ...]:
        """Every (exchange, routing-key pattern) pair this queue is bound with."""
        return tuple((self.exchange, k) for k in self.keys) + self.extra_bindings


ACQUISITION_COMMANDS = QueueSpec(
    "acquisition.commands",
    exchange=COMMANDS,
    keys=("run.*", "targets.*"),
)
PROCESSING_FINDERS = QueueSpec(
    "processing.finders",
    exchange=EVENTS,
    keys=("atlas.acquired", "square.acquired"),
)
PROCESSING_IMAGES = QueueSpec(
    "processing.images",
    exchange=EVENTS,
    keys=("exposure.acquired",),
)
SESSION_API_EVENTS = QueueSpec(
    "session-api.events",
    exchange=EVENTS,
    keys=("#",),
)
SESSION_API_LOGS = QueueSpec(
    "session-api.logs",
    exchange=LOGS,
    keys=("#",),
)

WORK_QUEUES: tuple[QueueSpec, ...] = (
    ACQUISITION_COMMANDS,
    PROCESSING_FINDERS,
    PROCESSING_IMAGES,
    SESSION_API_EVENTS,
    SESSION_API_LOGS,
)
"""The durable queues every service declares on start (declaring is idempotent)."""


def transient_queue(
    consumer: str,
    exchange: str,
    keys: tuple[str, ...],
    *,
    extra_bindings: tuple[tuple[str, str], ...] = (),
) -> QueueSpec:
    """A fresh exclusive, auto-delete queue ``transient.<consumer>.<uuid>``."""
    return QueueSpec(
        f"transient.{consumer}.{uuid.uuid4().hex}",
        exchange=exchange,
        keys=keys,
        durable=False,
        extra_bindings=extra_bindings,
    )


def lease_queue(microscope_id: str) -> str:
    """Name of the exclusive queue whose existence is the lease of ``microscope_id``."""
    return f"{LEASE_PREFIX}{microscope_id}"


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words."""
    return _match(pattern.split("."), key.split("."))


def _match(pat: list[str], words: list[str]) -> bool:
    if not pat:
        return not words
    head, rest = pat[0], pat[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])
