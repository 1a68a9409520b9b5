"""Live feeds: one transient bus queue per open page stream, with replay and de-duplication.

A feed subscribes first, then fetches the log history from session-api, then flushes what
the bus delivered meanwhile, skipping lines it already sent (by ``message_id``). Log lines
carry a cursor, the newest ``sent_at`` sent so far in epoch milliseconds; a reconnecting
browser hands it back (``Last-Event-ID`` or ``?cursor=``) and the feed replays from
``cursor - REPLAY_MARGIN`` (producers' clocks and the order across producers differ a
little); the page drops lines it already shows, so the overlap costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from proto.api import LogLineView
from proto.bus.base import Bus
from proto.messages.base import Message
from proto.messages.log import LogRecorded
from proto.messages.projection import StateProjected
from proto.topology import EVENTS, LOGS, transient_queue
from ui.metrics import SSE_OVERFLOWS

log = logging.getLogger(__name__)

REPLAY_MARGIN = timedelta(seconds=30)
TAIL = 500
"""Lines replayed to a page that connects without a cursor (the newest ones)."""
INBOX_SIZE = 10_000
CATCH_UP_AFTER_S = 2.0
"""A reconnect fetches once more after this long: lines published while no queue was bound
reach session-api's store a moment later than our first fetch may look."""


class Line(Protocol):
    """What a log line shows; both ``LogLineView`` (replayed) and ``LogRecorded`` (live)."""

    @property
    def message_id(self) -> UUID: ...
    @property
    def sent_at(self) -> datetime: ...
    @property
    def service(self) -> str: ...
    @property
    def panel(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class LogLines:
    """Log lines to append, and the cursor to send with them."""

    lines: list[Line]
    cursor: str


@dataclass(frozen=True)
class Changed:
    """Parts of the page to re-render; ``messages`` are the events that changed them."""

    parts: frozenset[str]
    messages: tuple[Message, ...] = ()


Item = LogLines | Changed
Classify = Callable[[Message], frozenset[str] | None]
"""Which parts a bus message changes (``{"log"}`` for a log line), ``None`` if irrelevant."""
FetchLogs = Callable[[datetime | None], Awaitable[list[LogLineView]]]
"""History from session-api: lines with ``sent_at >= since`` (``None``: the newest TAIL)."""

EVERYTHING = frozenset({"*"})


def encode_cursor(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def decode_cursor(raw: str | None) -> datetime | None:
    """The ``sent_at`` in a cursor; ``None`` when absent or not one of ours."""
    if not raw or not raw.strip().isdigit() or len(raw.strip()) > 16:
        return None
    return datetime.fromtimestamp(int(raw.strip()) / 1000, UTC)


class _Seen:
    def __init__(self, size: int = 20_000) -> None:
        self._ids: OrderedDict[UUID, None] = OrderedDict()
        self._size = size

    def add(self, message_id: UUID) -> bool:
        """Remember ``message_id``; False when it was already there."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


@dataclass
class Feed:
    """The items one open page receives, from the bus and from session-api's history."""

    bus: Bus
    classify: Classify
    fetch_logs: FetchLogs | None = None
    cursor: datetime | None = None
    _inbox: asyncio.Queue[Message | None] = field(init=False)
    _overflow: bool = field(default=False, init=False)
    _seen: _Seen = field(default_factory=_Seen, init=False)
    _newest: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._inbox = asyncio.Queue(INBOX_SIZE)

    async def _on_message(self, message: Message) -> None:
        # Never raise here: a raising handler would be retried and dead-lettered.
        try:
            if isinstance(message, StateProjected):
                # session-api has committed it: state read now includes it
                original = message.original()
                if original is None:
                    return
                message = original
            elif not isinstance(message, LogRecorded):
                return  # a raw event: wait until session-api has projected it
            if self.classify(message) is None:
                return
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            self._overflow = True
        except Exception:
            log.exception("could not classify %s", type(message).__name__)

    async def items(self) -> AsyncIterator[Item]:
        """Yield until the consumer stops iterating (the browser went away)."""
        spec = transient_queue(
            "ui", EVENTS, (StateProjected.routing_key,), extra_bindings=((LOGS, "#"),)
        )
        subscription = await self.bus.subscribe(spec, Message, self._on_message)
        catch_up: asyncio.Task[None] | None = None
        try:
            if self.fetch_logs is not None:
                batch = await self._history(self.cursor)
                if batch:
                    yield batch
                if self.cursor is not None:
                    catch_up = asyncio.create_task(self._wake_after(CATCH_UP_AFTER_S))
            yield Changed(EVERYTHING)
            while True:
                first = await self._inbox.get()
                async for item in self._drain(first):
                    yield item
        finally:
            if catch_up is not None:
                catch_up.cancel()
            await subscription.close()

    async def _wake_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(None)

    async def _drain(self, first: Message | None) -> AsyncIterator[Item]:
        batch: list[Message | None] = [first]
        while not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        parts: set[str] = set()
        if self._overflow or None in batch:
            if self._overflow:
                # Messages were dropped: replay the log and re-render every part.
                SSE_OVERFLOWS.inc()
                log.warning("a page stream fell behind the bus; resynchronising")
                parts |= EVERYTHING
            self._overflow = False
            if self.fetch_logs is not None:
                replay = await self._history(self._newest or datetime.now(UTC))
                if replay:
                    yield replay
        lines: list[Line] = []
        changers: list[Message] = []
        for message in batch:
            if message is None:
                continue
            if isinstance(message, LogRecorded):
                if self._seen.add(message.message_id):
                    lines.append(message)
                continue
            parts |= self.classify(message) or frozenset()
            changers.append(message)
        if lines:
            yield self._lines(lines)
        if parts:
            yield Changed(frozenset(parts), tuple(changers))

    async def _history(self, cursor: datetime | None) -> LogLines | None:
        assert self.fetch_logs is not None
        since = None if cursor is None else cursor - REPLAY_MARGIN
        try:
            fetched = await self.fetch_logs(since)
        except Exception:
            log.exception("could not replay the log history")
            return None
        fresh: list[Line] = [ln for ln in fetched if self._seen.add(ln.message_id)]
        return self._lines(fresh) if fresh else None

    def _lines(self, lines: list[Line]) -> LogLines:
        newest = max(ln.sent_at for ln in lines)
        if self._newest is None or newest > self._newest:
            self._newest = newest
        assert self._newest is not None
        return LogLines(lines, encode_cursor(self._newest))
