"""Shared live refreshes: one session-api read and one render per burst of events for every
open stream of the same page (a session, or the dashboard), fanned out to all of them.

Each open page has its own :class:`~ui.live.Feed` (its log lines, replay, de-duplication),
but the parts re-rendered from session-api's state — the session page's process, controls,
pop-ups, disk and queue, the dashboard's cards — are the same for every viewer. Before, every
stream re-read them on every event: with 50 pages open, one disk report was 100 session-api
calls and 100 renders in the ui's (and, embedded, session-api's) event loop, and each stream
held its log lines back until its own refresh was done. A :class:`Hub` per page kind and id
refreshes once for all its streams:

* the streams' feeds report what changed (the same bus message reaches every stream; the hub
  keeps the first report of each ``message_id``), and one task per hub reads and renders;
  reports that arrive while it reads are coalesced into the next read, which starts after
  they were committed (a feed hears of an event only once session-api has projected it,
  and of session-api's own changes, ``SessionChanged``, once it has committed them);
* each part is rendered once per role (partials may depend on the user's role, nothing else
  of the user) and handed to every stream, which sends it after any log lines it has waiting:
  a slow refresh never delays a log line;
* a part that renders exactly as the stream last got it is not sent again.

The stream is the only writer of these parts on an open page (a control's answer reports its
outcome in the message area and nothing else; see ``docs/architecture.md``). One task reads,
one read after the other, and a stream sends in order: a page never gets an older read of a
part after a newer one, so nothing on the page needs to compare versions. A read that fails
sends nothing and is tried again.

A stream joins once session-api has accepted its user's token. The hub reads with one of its
users' tokens; 401 logs out the streams with that token and the read is retried with another.
The other tokens are checked at most every :data:`VERIFY_S` seconds (``/api/auth/me``, after
a refresh), so an expired login still ends its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from proto.messages.base import Message
from ui.auth import User
from ui.client import ApiClient, ApiError, NotLoggedIn
from ui.live import Changed, Feed, LogLines, Seen

log = logging.getLogger(__name__)

VERIFY_S = 60.0
"""How often a token that the hub does not read with is checked with session-api."""
RETRY_S = 2.0
"""How soon a refresh that session-api failed is first tried again; the wait doubles with each
failure in a row, up to ``RETRY_MAX_S`` (an event that session-api projects wakes the hub at
once anyway: it is back)."""
RETRY_MAX_S = 30.0
LINES_WAITING = 64
"""Batches of log lines a stream may have waiting before its feed stops taking more (the
feed's inbox then fills and overflows into a resync, as when the browser is slow)."""


class Snapshot(Protocol):
    """State read once for a burst of events; renders its parts."""

    def parts(self) -> Iterable[str]:
        """Every part this read can render."""
        ...

    def render(self, part: str, user: User) -> str:
        """The part's HTML for ``user``; may depend on ``user.role`` only."""
        ...


class Source(Protocol):
    """What a hub reads from session-api and renders (one session page, or the dashboard)."""

    async def load(
        self, api: ApiClient, parts: frozenset[str], messages: tuple[Message, ...]
    ) -> Snapshot:
        """Read what ``parts`` (``"*"``: all) need; ``messages`` are the events that changed
        them, oldest first. Raises :class:`~ui.client.ApiError`, also when only part of what
        is needed could be read."""
        ...


@dataclass(eq=False)
class Subscriber:
    """One open stream: the log lines and parts waiting to be sent to its browser."""

    user: User
    full: bool = False
    """Send every part after the next read (the stream just connected or resynchronised)."""
    logged_out: bool = False
    error: BaseException | None = None
    _lines: deque[LogLines] = field(default_factory=deque)
    _parts: dict[str, str] = field(default_factory=dict)
    _sent: dict[str, str] = field(default_factory=dict)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _room: asyncio.Event = field(default_factory=asyncio.Event)

    async def put_lines(self, lines: LogLines) -> None:
        while len(self._lines) >= LINES_WAITING:
            self._room.clear()
            await self._room.wait()
        self._lines.append(lines)
        self._ready.set()

    def put_part(self, part: str, html: str, *, always: bool) -> None:
        """Queue ``html`` for ``part`` (a newer one replaces one still waiting); skipped when
        the stream got the same last and ``always`` is false."""
        if not always and self._sent.get(part) == html:
            return
        self._sent[part] = html
        self._parts[part] = html
        self._ready.set()

    def end(self, error: BaseException | None = None, *, logged_out: bool = False) -> None:
        self.error = self.error or error
        self.logged_out = self.logged_out or logged_out
        self._ready.set()

    async def take(self, timeout: float) -> tuple[list[LogLines], list[tuple[str, str]]]:
        """Wait for something to send: log lines first, then parts (nothing after
        ``timeout`` seconds)."""
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return [], []
        self._ready.clear()
        lines, parts = list(self._lines), list(self._parts.items())
        self._lines.clear()
        self._parts.clear()
        self._room.set()
        return lines, parts


class Hub:
    """The shared refresher of one page kind and id; see the module docstring."""

    def __init__(self, http: httpx.AsyncClient, source: Source, name: str) -> None:
        self.source = source
        self.name = name
        self._http = http
        self._subs: list[Subscriber] = []
        self._dirty: set[str] = set()
        self._messages: list[Message] = []
        self._seen = Seen()
        self._wake = asyncio.Event()
        self._verified: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        """Refreshes that session-api failed in a row (one warning per outage)."""

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        return tuple(self._subs)

    def join(self, user: User) -> Subscriber:
        """A new stream of ``user``, whose token session-api has just accepted."""
        sub = Subscriber(user)
        self._subs.append(sub)
        self._verified[user.token] = time.monotonic()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"hub {self.name}")
        return sub

    def leave(self, sub: Subscriber) -> bool:
        """Drop ``sub``; True when it was the last (the hub stops, without waiting)."""
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)
        if not any(s.user.token == sub.user.token for s in self._subs):
            self._verified.pop(sub.user.token, None)
        if self._subs:
            return False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return True

    def changed(self, sub: Subscriber, item: Changed) -> None:
        """A stream's feed reports ``item``; the first report of an event marks its parts."""
        if item.resync:
            sub.full = True
            self._wake.set()
        fresh = [m for m in item.messages if self._seen.add(m.message_id)]
        if fresh:
            self._dirty |= item.parts
            self._messages.extend(fresh)
            self._wake.set()

    # --- the refresher ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._refresh()
            except Exception:
                log.exception("could not refresh %s", self.name)

    async def _refresh(self) -> None:
        full = {s for s in self._subs if s.full}
        for sub in full:
            sub.full = False
        dirty, messages = frozenset(self._dirty), tuple(self._messages)
        self._dirty, self._messages = set(), []
        if not full and not dirty:
            return
        loaded = await self._load(frozenset({"*"}) if full else dirty, messages)
        if loaded is None:
            if any(not s.logged_out for s in self._subs):
                # session-api failed: nothing is lost, the same refresh is tried again
                self._dirty |= dirty
                self._messages[:0] = messages
                for sub in full:
                    sub.full = True
                delay = min(RETRY_MAX_S, RETRY_S * 2 ** max(0, min(self._failures - 1, 16)))
                asyncio.get_running_loop().call_later(delay, self._wake.set)
            return
        if self._failures:
            log.info(
                "%s: session-api answers again after %d failed reads", self.name, self._failures
            )
            self._failures = 0
        snapshot, token = loaded
        every = list(snapshot.parts())
        touched = every if "*" in dirty else [p for p in every if p in dirty]
        html: dict[tuple[str, str], str] = {}
        for sub in list(self._subs):
            if sub.logged_out:
                continue
            for part in every if sub in full else touched:
                key = (part, sub.user.role)
                if key not in html:
                    html[key] = snapshot.render(part, sub.user)
                sub.put_part(part, html[key], always=sub in full)
        await self._verify(exclude=token)

    async def _load(
        self, parts: frozenset[str], messages: tuple[Message, ...]
    ) -> tuple[Snapshot, str] | None:
        tried: set[str] = set()
        while True:
            user = next(
                (s.user for s in self._subs if not s.logged_out and s.user.token not in tried),
                None,
            )
            if user is None:
                return None
            tried.add(user.token)
            try:
                snapshot = await self.source.load(
                    ApiClient(self._http, user.token), parts, messages
                )
            except NotLoggedIn:
                self._log_out(user.token)
                continue
            except ApiError as exc:
                self._failures += 1
                if self._failures == 1:
                    log.warning(
                        "could not refresh %s: %s; trying again, less often while it fails",
                        self.name,
                        exc.detail,
                    )
                return None
            self._verified[user.token] = time.monotonic()
            return snapshot, user.token

    async def _verify(self, exclude: str) -> None:
        now = time.monotonic()
        due = {
            s.user.token
            for s in self._subs
            if s.user.token != exclude
            and not s.logged_out
            and now - self._verified.get(s.user.token, 0.0) >= VERIFY_S
        }
        if not due:
            return
        results = await asyncio.gather(
            *(ApiClient(self._http, token).me() for token in due), return_exceptions=True
        )
        for token, result in zip(due, results, strict=True):
            if isinstance(result, NotLoggedIn):
                self._log_out(token)
            elif not isinstance(result, BaseException):
                self._verified[token] = now

    def _log_out(self, token: str) -> None:
        self._verified.pop(token, None)
        for sub in self._subs:
            if sub.user.token == token:
                sub.end(logged_out=True)


class ServerClosing(Exception):
    """The ui is shutting down: the stream ends (its browser reconnects, with its cursor)."""


class Hubs:
    """The app's hubs by key; a hub lives while it has streams."""

    def __init__(self) -> None:
        self._hubs: dict[Hashable, Hub] = {}
        self.closing = False

    def close(self) -> None:
        """End every stream, and any that joins later: the server is shutting down, and its
        streams never end by themselves."""
        self.closing = True
        for hub in self._hubs.values():
            for sub in hub.subscribers:
                sub.end(ServerClosing())

    def __len__(self) -> int:
        return len(self._hubs)

    @contextlib.contextmanager
    def joined(
        self, key: Hashable, user: User, make: Callable[[], Hub]
    ) -> Iterator[tuple[Hub, Subscriber]]:
        """Join the hub of ``key`` (made by ``make`` if there is none) for the block's time
        (see :meth:`Hub.join`). Leaving never awaits: it also runs when the browser has gone
        and the stream is being cancelled."""
        hub = self._hubs.get(key)
        if hub is None:
            hub = self._hubs[key] = make()
        sub = hub.join(user)
        if self.closing:
            sub.end(ServerClosing())
        try:
            yield hub, sub
        finally:
            if hub.leave(sub) and self._hubs.get(key) is hub:
                del self._hubs[key]


@dataclass(frozen=True)
class Batch:
    """What a stream sends at once: log lines (oldest first), then ``(part, html)``; both
    empty when nothing happened for ``idle_s`` (time for a keep-alive)."""

    lines: list[LogLines]
    parts: list[tuple[str, str]]


async def relay(
    feed: Feed, hub: Hub, sub: Subscriber, idle_s: float
) -> AsyncGenerator[Batch, None]:
    """What one stream sends: its feed's log lines as they come and the hub's parts for it,
    all that waits at each wake-up. Raises :class:`~ui.client.NotLoggedIn` when the user's
    login is gone, and whatever ended the feed."""
    pump = asyncio.create_task(_pump(feed, hub, sub), name=f"feed of {hub.name}")
    try:
        while True:
            lines, parts = await sub.take(idle_s)
            yield Batch(lines, parts)
            if sub.logged_out:
                raise NotLoggedIn("session expired or unknown token; log in again")
            if sub.error is not None:
                raise sub.error
    finally:
        pump.cancel()
        # The feed drops its bus subscription as the pump ends; wait for that, unless this
        # stream is being cancelled again (then the pump finishes on its own).
        with contextlib.suppress(asyncio.CancelledError):
            await pump


async def _pump(feed: Feed, hub: Hub, sub: Subscriber) -> None:
    try:
        async for item in feed.items():
            if isinstance(item, LogLines):
                await sub.put_lines(item)
            else:
                hub.changed(sub, item)
    except Exception as exc:
        sub.end(exc)
        return
    sub.end(RuntimeError("the feed ended"))
