"""The notifier: a consumer inside session-api that turns projected events into messages.

It hears every event the projector has committed (a listener), but only ever puts it on a
bounded queue there — never a database read or a network call on the projector's path; when
the queue is full the event is dropped and counted. Its own tasks then do the rest:

- ``_consume`` turns events into notices, finds who subscribed (database) and queues each
  notice for each of their destinations in the :class:`Outbox`;
- ``_dispatch`` sends what the outbox says is due, each message as its own task (one in flight
  per destination), and records each attempt on the destination's row;
- ``_watch`` looks for silent runs every few seconds.

What waits in the outbox is in memory: a restart of session-api loses it (at most one burst
per destination; ``docs/operations.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import apprise
from sqlalchemy import Update, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto import messages as m
from session_api.db.models import Microscope, NotifyDestination, NotifySubscription, Run, Session
from session_api.db.types import utcnow
from session_api.metrics import ApiMetrics
from session_api.notify.notices import (
    DiskLevels,
    FailureWindow,
    Notice,
    lease_lost,
    pause_prompt,
    run_ended,
)
from session_api.notify.outbox import Due, Outbox
from session_api.notify.sender import Message, Outcome, compose, deliver
from session_api.notify.urls import Unreadable, UrlBox, hide_unparsed_urls
from session_api.notify.watch import PROGRESS, SilenceWatch
from session_api.settings import ApiSettings

log = logging.getLogger(__name__)

HEARD = (
    m.RunStateChanged,
    m.DecisionRequested,
    m.LeaseLost,
    m.MicroscopeReported,
    m.ImageFailed,
    *PROGRESS,
)
"""The events the notifier takes from the projector; every other one is ignored at once."""


class Notifier:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: ApiSettings,
        metrics: ApiMetrics,
    ) -> None:
        self._sessions = sessions
        self.settings = s = settings.notify
        self._metrics = metrics
        self.box = UrlBox(settings.secret_key.get_secret_value())
        self.queue: asyncio.Queue[m.Message] = asyncio.Queue(s.queue_size)
        self.outbox = Outbox(s.coalesce_s, s.min_interval_s, s.retries, s.retry_s, s.max_pending)
        self.disk = DiskLevels()
        self.failures = FailureWindow(s.failures_n, s.failures_minutes)
        self.watch = SilenceWatch(s.silent_s, s.stalled_s, started=utcnow())
        self.dropped_events = 0
        self.last_test: dict[int, float] = {}
        """When each destination was last sent a test (monotonic s): tests are rate-limited."""
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed what was known before this start (disk levels), then run the tasks."""
        hide_unparsed_urls()
        async with self._sessions() as db:
            for scope in (await db.scalars(select(Microscope))).all():
                self.disk.seed(scope.id, [m.VolumeStatus.model_validate(v) for v in scope.volumes])
        self._tasks = [
            asyncio.create_task(self._guard(self._consume), name="notify-consume"),
            asyncio.create_task(self._guard(self._dispatch), name="notify-dispatch"),
            asyncio.create_task(self._guard(self._watch), name="notify-watch"),
            asyncio.create_task(_warm_up(), name="notify-warm-up"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._sends]:
            task.cancel()
        for task in [*self._tasks, *self._sends]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def idle(self) -> None:
        """Wait until every queued event is routed and no message is on its way."""
        await self.queue.join()
        while self._sends:
            await asyncio.wait(list(self._sends))

    async def _guard(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run a loop for ever: an unexpected error is logged and the loop goes on."""
        while True:
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifications: %s failed; going on", getattr(body, "__name__", ""))
                await asyncio.sleep(1)  # not a busy loop if it fails at once again

    # --- the projector's side: never blocks -----------------------------------------------

    async def listen(self, event: m.Message) -> None:
        """The projector's listener: queue the event if it may matter, or drop and count."""
        if not isinstance(event, HEARD):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped_events += 1
            self._metrics.notify_events_dropped.inc()
            if self.dropped_events % 100 == 1:
                log.warning("notifications: event queue full; %d dropped", self.dropped_events)

    # --- events to notices to destinations ------------------------------------------------

    async def _consume(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                self.watch.heard(event)
                for notice in self._notices(event):
                    await self.route(notice)
            finally:
                self.queue.task_done()

    def _notices(self, e: m.Message) -> list[Notice]:
        if isinstance(e, m.RunStateChanged):
            if e.state == "ended":
                self.failures.forget(e.run_id)
            return _some(run_ended(e))
        if isinstance(e, m.DecisionRequested):
            return _some(pause_prompt(e))
        if isinstance(e, m.LeaseLost):
            return [lease_lost(e)]
        if isinstance(e, m.MicroscopeReported):
            return self.disk.report(e)
        if isinstance(e, m.ImageFailed):
            return _some(self.failures.failed(e))
        return []

    async def route(self, notice: Notice) -> None:
        """Queue ``notice`` for every destination of every user subscribed to it."""
        async with self._sessions() as db:
            notice = await _placed(db, notice)
            destinations = await _destinations_for(db, notice)
        now = asyncio.get_running_loop().time()
        for destination_id in destinations:
            dropped = self.outbox.add(destination_id, notice, now)
            if dropped:
                await self._count_dropped(destination_id, dropped)
        if destinations:
            self._wake.set()

    # --- sending --------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            for due in self.outbox.take_due(loop.time()):
                task = asyncio.create_task(self._send(due), name=f"notify-{due.destination_id}")
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
            at = self.outbox.next_due()
            wait = None if at is None else max(0.0, at - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _send(self, due: Due) -> None:
        outcome = Outcome(False, "not sent")
        try:
            async with self._sessions() as db:
                row = await db.get(NotifyDestination, due.destination_id)
            if row is None:  # removed meanwhile
                outcome = Outcome(True)
                return
            try:
                url = self.box.open(row.url_box)
            except Unreadable as exc:
                outcome = Outcome(False, str(exc))
            else:
                outcome = await deliver(
                    url, compose(due.notices, self.settings.base_url), self.settings.timeout_s
                )
            if not outcome.ok:
                log.warning(
                    "notifications: %d notices to destination %d (%s) failed (try %d): %s",
                    len(due.notices),
                    row.id,
                    row.url_masked,
                    due.attempt + 1,
                    outcome.error,
                )
        finally:
            dropped = self.outbox.done(due, outcome.ok, asyncio.get_running_loop().time())
            self._wake.set()
        await self.record(due.destination_id, outcome, dropped)

    async def record(self, destination_id: int, outcome: Outcome, dropped: int = 0) -> None:
        """Write one attempt's outcome on the destination's row (the settings page reads it)."""
        self._metrics.notifications.labels("sent" if outcome.ok else "failed").inc()
        if dropped:
            self._metrics.notifications.labels("dropped").inc(dropped)
        async with self._sessions() as db:
            await db.execute(_status_update(destination_id, outcome, dropped))
            await db.commit()

    async def _count_dropped(self, destination_id: int, dropped: int) -> None:
        self._metrics.notifications.labels("dropped").inc(dropped)
        async with self._sessions() as db:
            await db.execute(
                update(NotifyDestination)
                .where(NotifyDestination.id == destination_id)
                .values(dropped=NotifyDestination.dropped + dropped)
            )
            await db.commit()

    async def send_test(self, row: NotifyDestination, username: str) -> Outcome:
        """Send a test message to ``row`` now, past the outbox (the caller records it)."""
        try:
            url = self.box.open(row.url_box)
        except Unreadable as exc:
            return Outcome(False, str(exc))
        message = Message(
            f"Gridpilot: test message for {row.label}",
            f"{username} sent this test from the Notifications page. Notices for this "
            "destination will arrive like this one.",
            "info",
        )
        return await deliver(url, message, self.settings.timeout_s)

    # --- silent runs ----------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.watch_interval_s)
            async with self._sessions() as db:
                notices = await self.watch.check(db, utcnow())
            for notice in notices:
                await self.route(notice)


def status_values(outcome: Outcome) -> dict[str, object]:
    now = utcnow()
    if outcome.ok:
        return {"last_attempt_at": now, "last_ok_at": now, "sent": NotifyDestination.sent + 1}
    return {
        "last_attempt_at": now,
        "last_error_at": now,
        "last_error": outcome.error,
        "failed": NotifyDestination.failed + 1,
    }


def _status_update(destination_id: int, outcome: Outcome, dropped: int) -> Update:
    values = status_values(outcome)
    if dropped:
        values["dropped"] = NotifyDestination.dropped + dropped
    return update(NotifyDestination).where(NotifyDestination.id == destination_id).values(values)


def _some(notice: Notice | None) -> list[Notice]:
    return [notice] if notice is not None else []


async def _warm_up() -> None:
    """Apprise loads its plugins on first use (about half a second): not on the loop."""
    await asyncio.to_thread(apprise.Apprise.instantiate, "json://localhost")


async def _placed(db: AsyncSession, n: Notice) -> Notice:
    """The notice with its session, microscope and run filled in, and in words."""
    run = await db.get(Run, n.run_id) if n.run_id else None
    session_id = n.session_id or (run.session_id if run else None)
    session = await db.get(Session, session_id) if session_id else None
    microscope_id = n.microscope_id or (session.microscope_id if session else None)
    scope = await db.get(Microscope, microscope_id) if microscope_id else None
    words = []
    if session is not None:
        words.append(f"session {session.name}" + (f", run {run.number}" if run else ""))
    if scope is not None:
        words.append(f"on {scope.name}" if words else scope.name)
    return replace(n, session_id=session_id, microscope_id=microscope_id, where=" ".join(words))


async def _destinations_for(db: AsyncSession, n: Notice) -> list[int]:
    """Destinations of the users subscribed to ``n`` (its session, or its microscope)."""
    scopes = []
    if n.session_id is not None:
        scopes.append(NotifySubscription.session_id == n.session_id)
    if n.microscope_id is not None:
        scopes.append(
            and_(
                NotifySubscription.session_id.is_(None),
                NotifySubscription.microscope_id == n.microscope_id,
            )
        )
        if n.session_id is None:  # a disk notice: also the sessions live on that scope now
            live = select(Session.id).where(
                Session.microscope_id == n.microscope_id, Session.live_run_id.is_not(None)
            )
            scopes.append(NotifySubscription.session_id.in_(live))
    if not scopes:
        return []
    subs = (await db.scalars(select(NotifySubscription).where(or_(*scopes)))).all()
    users = {s.user_id for s in subs if n.events & set(s.events)}
    if not users:
        return []
    rows = await db.scalars(
        select(NotifyDestination.id)
        .where(NotifyDestination.user_id.in_(users))
        .order_by(NotifyDestination.id)
    )
    return list(rows.all())
