"""Live feeds: one transient bus queue per open page stream, with replay and de-duplication.

A feed subscribes first, then fetches the log history from session-api, then flushes what
the bus delivered meanwhile, skipping lines it already sent (by ``message_id``). Log lines
carry a cursor, the newest ``sent_at`` sent so far in epoch milliseconds; a reconnecting
browser hands it back (``Last-Event-ID`` or ``?cursor=``) and the feed replays from
``cursor - REPLAY_MARGIN`` (producers' clocks and the order across producers differ a
little); the page drops lines it already shows, so the overlap costs nothing.

A line published just before the feed subscribed may reach session-api's store only after
that first fetch (under load, seconds after). So after every gap — connecting, and a resync
after the inbox overflowed — the feed fetches again: once after :data:`CATCH_UP_AFTER_S`, then
(with a live line to look for, backing off) until the store holds a line that reached the
feed live after the gap. session-api stores lines in the order the bus delivers them, so it
then holds every line from before the gap too.
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
from proto.messages.session import SessionChanged
from proto.topology import EVENTS, LOGS, transient_queue
from ui.metrics import SSE_OVERFLOWS

log = logging.getLogger(__name__)

REPLAY_MARGIN = timedelta(seconds=30)
TAIL = 500
"""Lines replayed to a page that connects without a cursor (the newest ones)."""
INBOX_SIZE = 10_000
CATCH_UP_AFTER_S = 1.0
"""The first catch-up fetch after a gap. Later ones wait for a live line to look for, then
this long, twice as long after each miss up to CATCH_UP_MAX_S, CATCH_UP_TRIES at most."""
CATCH_UP_MAX_S = 30.0
CATCH_UP_TRIES = 8


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
    """Parts of the page to re-render; ``messages`` are the events that changed them.
    ``resync``: the page needs every part (it just connected, or the feed lost messages)."""

    parts: frozenset[str]
    messages: tuple[Message, ...] = ()
    resync: bool = False


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


class Seen:
    """A bounded set of message ids, oldest forgotten first."""

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
    _seen: Seen = field(default_factory=Seen, init=False)
    _newest: datetime | None = field(default=None, init=False)
    _gap: datetime | None = field(default=None, init=False)
    """Lines from this ``sent_at`` on may be missing until the store confirms them."""
    _proof: UUID | None = field(default=None, init=False)
    """The first line that reached the inbox after the last one it lost (or since subscribing)."""
    _due: bool = field(default=False, init=False)
    _proved: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _checked: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _catch_up: asyncio.Task[None] | None = field(default=None, init=False)

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
            elif not isinstance(message, LogRecorded | SessionChanged):
                # a raw event: wait until session-api has projected it (``SessionChanged``
                # is session-api's own word, sent once it has committed the change)
                return
            if self.classify(message) is None:
                return
            self._inbox.put_nowait(message)
            if self._proof is None and isinstance(message, LogRecorded):
                self._proof = message.message_id
                self._proved.set()
        except asyncio.QueueFull:
            self._overflow = True
            self._proof = None
            self._proved.clear()
        except Exception:
            log.exception("could not classify %s", type(message).__name__)

    async def items(self) -> AsyncIterator[Item]:
        """Yield until the consumer stops iterating (the browser went away)."""
        spec = transient_queue(
            "ui",
            EVENTS,
            (StateProjected.routing_key, SessionChanged.routing_key),
            extra_bindings=((LOGS, "#"),),
        )
        subscription = await self.bus.subscribe(spec, Message, self._on_message)
        try:
            if self.fetch_logs is not None:
                gap = self.cursor or datetime.now(UTC)
                batch, _ = await self._history(self.cursor)
                if batch:
                    yield batch
                self._open_gap(gap)
            yield Changed(EVERYTHING, resync=True)
            while True:
                first = await self._inbox.get()
                async for item in self._drain(first):
                    yield item
        finally:
            if self._catch_up is not None:
                self._catch_up.cancel()
            await subscription.close()

    def _open_gap(self, since: datetime) -> None:
        self._gap = since if self._gap is None else min(self._gap, since)
        self._due = False
        if self._catch_up is not None:
            self._catch_up.cancel()
        self._catch_up = asyncio.create_task(self._catching_up())

    async def _catching_up(self) -> None:
        # Once soon (the store is usually a moment behind), then only with a live line to
        # look for: a quiet session costs no polling, a busy one is confirmed at once.
        delay = CATCH_UP_AFTER_S
        await asyncio.sleep(delay)
        for _ in range(CATCH_UP_TRIES):
            self._checked.clear()
            self._due = True
            with contextlib.suppress(asyncio.QueueFull):
                self._inbox.put_nowait(None)  # a full inbox is drained soon anyway
            await self._checked.wait()
            if self._gap is None:
                return
            if self._proof is None:
                await self._proved.wait()
                delay = CATCH_UP_AFTER_S
            else:
                delay = min(delay * 2, CATCH_UP_MAX_S)
            await asyncio.sleep(delay)  # let the store reach the live line
        log.info("the log store never confirmed a live line; stopped catching up")
        self._gap = None

    async def _drain(self, first: Message | None) -> AsyncIterator[Item]:
        batch: list[Message | None] = [first]
        while not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        parts: set[str] = set()
        resync = False
        if self._overflow:
            # Messages were dropped: replay the log and re-render every part.
            SSE_OVERFLOWS.inc()
            log.warning("a page stream fell behind the bus; resynchronising")
            self._overflow, resync = False, True
            parts |= EVERYTHING
            if self.fetch_logs is not None:
                since = self._newest or datetime.now(UTC)
                replay, _ = await self._history(since)
                if replay:
                    yield replay
                self._open_gap(since)
        elif self._due and self._gap is not None:
            self._due = False
            replay, stored = await self._history(self._gap)
            if replay:
                yield replay
            if self._proof is not None and self._proof in stored:
                self._gap = None
            self._checked.set()
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
            yield Changed(frozenset(parts), tuple(changers), resync)

    async def _history(self, cursor: datetime | None) -> tuple[LogLines | None, set[UUID]]:
        """Lines from ``cursor - REPLAY_MARGIN`` (``None``: the newest TAIL) not sent yet,
        and the ids of every line fetched."""
        assert self.fetch_logs is not None
        since = None if cursor is None else cursor - REPLAY_MARGIN
        try:
            fetched = await self.fetch_logs(since)
        except Exception:
            log.exception("could not replay the log history")
            return None, set()
        fresh: list[Line] = [ln for ln in fetched if self._seen.add(ln.message_id)]
        return (self._lines(fresh) if fresh else None), {ln.message_id for ln in fetched}

    def _lines(self, lines: list[Line]) -> LogLines:
        newest = max(ln.sent_at for ln in lines)
        if self._newest is None or newest > self._newest:
            self._newest = newest
        assert self._newest is not None
        return LogLines(lines, encode_cursor(self._newest))
