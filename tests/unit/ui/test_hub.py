"""The shared refresh of live partials: one session-api read and one render per event for
every open stream of a session, reads one after the other and sent in that order (the stream
is the only writer of a page's live parts), log lines never held back by a refresh, unchanged
parts not resent, failed reads sending nothing, expired logins ended, hubs dropped with their
last stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx
import pytest
from unit.ui.fake_api import FakeApi, Sess

from proto.bus.memory import MemoryBus
from proto.messages.disk import MicroscopeReported, VolumeStatus
from proto.messages.log import LogRecorded
from proto.messages.projection import StateProjected
from proto.messages.run import RunStateChanged
from proto.messages.session import SessionChanged
from proto.states import RunState
from ui import hub as hub_module
from ui.auth import User
from ui.client import NotLoggedIn
from ui.hub import Batch, Hub, Hubs, relay
from ui.live import Feed
from ui.render import make_templates
from ui.sources import SessionSource
from ui.views import SessionFilter

VIEWER = User("viewer", "viewer", "tok-viewer")
STAFF = User("staff", "staff", "tok-staff")
GHOST = User("ghost", "viewer", "tok-nobody")  # session-api answers 401
RUN = uuid4()


class Gate(httpx.AsyncBaseTransport):
    """The fake session-api, with a gate that holds session reads while it is closed."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app)
        self.open = asyncio.Event()
        self.open.set()
        self.held = asyncio.Event()
        self.answer_first = False
        """Hold a session read's answer (read already) instead of the request."""

        self.failing: set[str] = set()
        """Paths answered 503 (``/api/sessions/…``, ``/api/microscopes``) while listed."""
        self.failed = asyncio.Event()
        self.failures = 0
        self.reading = 0
        self.most_reading = 0
        """The most session reads under way at once."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        session = path.startswith("/api/sessions/") and path.count("/") == 3
        self.reading += session
        self.most_reading = max(self.most_reading, self.reading)
        try:
            if not self.open.is_set() and path.startswith("/api/sessions/"):
                if self.answer_first:  # read now, answer once the gate opens
                    response = await self._inner.handle_async_request(request)
                    await response.aread()
                    self.held.set()
                    await self.open.wait()
                    return response
                self.held.set()
                await self.open.wait()
            if any(path.startswith(p) for p in self.failing):
                self.failed.set()
                self.failures += 1
                return httpx.Response(503, json={"detail": "database unavailable"})
            return await self._inner.handle_async_request(request)
        finally:
            self.reading -= session


@dataclass
class Stream:
    """One open page: its relay's batches as they come."""

    user: User
    batches: list[Batch] = field(default_factory=list)
    error: BaseException | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def parts(self, since: int = 0) -> dict[str, str]:
        return {p: html for b in self.batches[since:] for p, html in b.parts}

    def texts(self) -> list[str]:
        return [ln.text for b in self.batches for item in b.lines for ln in item.lines]

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not check():
                self.changed.clear()
                if check():
                    return
                await self.changed.wait()


@dataclass
class Rig:
    fake: FakeApi
    session: Sess
    bus: MemoryBus
    gate: Gate
    hubs: Hubs
    http: httpx.AsyncClient
    streams: list[Stream] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def open(self, user: User) -> Stream:
        stream = Stream(user)
        self.streams.append(stream)
        self.tasks.append(asyncio.create_task(self._run(stream)))
        return stream

    async def _run(self, stream: Stream) -> None:
        sid = self.session.id
        env = make_templates().env

        def make() -> Hub:
            where = SessionFilter(sid, self.session.scope, {RUN})
            return Hub(self.http, SessionSource(env, sid, where), f"session {sid}")

        with self.hubs.joined(("session", sid), stream.user, make) as (hub, sub):
            assert isinstance(hub.source, SessionSource)
            feed = Feed(self.bus, hub.source.where)
            try:
                async with contextlib.aclosing(relay(feed, hub, sub, idle_s=60)) as batches:
                    async for batch in batches:
                        stream.batches.append(batch)
                        stream.changed.set()
            except NotLoggedIn as exc:
                stream.error = exc
                stream.changed.set()

    def reads(self) -> list[str]:
        return [path for method, path in self.fake.calls if method == "GET"]


@pytest.fixture
async def rig(membus: MemoryBus) -> AsyncIterator[Rig]:
    fake = FakeApi(membus)
    fake.add_scope("krios-1", "Krios 1")
    session = fake.add_session("hub", "krios-1")
    gate = Gate(fake.app)
    async with httpx.AsyncClient(transport=gate, base_url="http://api.test") as http:
        rig = Rig(fake, session, membus, gate, Hubs(), http)
        yield rig
        for task in rig.tasks:
            task.cancel()
        for task in rig.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def state_changed(rig: Rig) -> StateProjected:
    """A projected event, with a change for it to show (the pause toggled)."""
    rig.session.pause = not rig.session.pause
    event = RunStateChanged(
        run_id=RUN, session_id=rig.session.id, microscope_id="krios-1", state=RunState.RUNNING
    )
    return StateProjected.of(event)


def changed(rig: Rig, change: str) -> SessionChanged:
    """As session-api publishes it once it has committed a change of its own."""
    return SessionChanged(
        session_id=rig.session.id, microscope_id="krios-1", change=change, requested_by="op"
    )


def reported(free: int) -> StateProjected:
    volume = VolumeStatus(name="data", path="/mnt/data", total_bytes=1000, free_bytes=free)
    event = MicroscopeReported(
        microscope_id="krios-1", name="Krios 1", driver="sim", volumes=(volume,)
    )
    return StateProjected.of(event)


async def all_connected(rig: Rig) -> None:
    """Every stream got its first full set of parts."""
    for stream in rig.streams:
        await stream.until(lambda s=stream: len(s.parts()) == 5)  # type: ignore[misc]


async def test_fifty_streams_cost_one_read_per_event(rig: Rig) -> None:
    for i in range(50):
        rig.open(STAFF if i % 10 == 0 else VIEWER)
    await all_connected(rig)
    assert len(rig.hubs) == 1
    rig.fake.calls.clear()
    marks = [len(s.batches) for s in rig.streams]

    await rig.bus.publish(state_changed(rig))
    for stream, mark in zip(rig.streams, marks, strict=True):
        await stream.until(lambda s=stream, m=mark: "controls" in s.parts(m))  # type: ignore[misc]

    sid = rig.session.id
    assert sorted(rig.reads()) == sorted(
        [f"/api/sessions/{sid}", "/api/microscopes", f"/api/sessions/{sid}/queue"]
    )
    # one render per part and role: every stream of a role got the very same string
    controls = [(s.user, s.parts(m)["controls"]) for s, m in zip(rig.streams, marks, strict=True)]
    assert len({id(html) for user, html in controls if user is VIEWER}) == 1
    assert len({id(html) for user, html in controls if user is STAFF}) == 1
    staff = next(s for s in rig.streams if s.user is STAFF)
    viewer = next(s for s in rig.streams if s.user is VIEWER)
    assert "Force-kill" in staff.parts()["controls"]
    assert "Force-kill" not in viewer.parts()["controls"]


async def test_log_lines_do_not_wait_for_a_slow_refresh(rig: Rig) -> None:
    stream = rig.open(VIEWER)
    await all_connected(rig)
    rig.gate.open.clear()  # session-api stalls from now on
    mark = len(stream.batches)
    await rig.bus.publish(state_changed(rig))
    async with asyncio.timeout(5):
        await rig.gate.held.wait()  # the refresh is under way, and stuck
    line = LogRecorded(
        run_id=RUN,
        service="acquisition",
        panel="acquisition",
        level="info",
        logger="t",
        text="not held back",
        session_id=str(rig.session.id),
    )
    await rig.bus.publish(line)
    await stream.until(lambda: "not held back" in stream.texts())
    assert "controls" not in stream.parts(mark)
    rig.gate.open.set()
    await stream.until(lambda: "controls" in stream.parts(mark))


async def test_unchanged_parts_are_not_resent(rig: Rig) -> None:
    stream = rig.open(VIEWER)
    await all_connected(rig)
    volumes = rig.fake.scopes["krios-1"].volumes
    volumes[0] = volumes[0].model_copy(update={"free_bytes": 300_000_000_000})
    mark = len(stream.batches)
    await rig.bus.publish(reported(free=500))
    await stream.until(lambda: "disk" in stream.parts(mark))
    # a disk report: the disk panel changed and is sent; the pop-ups render as before
    assert "300.0 GB" in stream.parts(mark)["disk"]
    assert "popups" not in stream.parts(mark)
    mark = len(stream.batches)
    rig.session.pause = True
    await rig.bus.publish(changed(rig, "pause between grids on"))
    await stream.until(lambda: "controls" in stream.parts(mark))
    # read again after a change session-api committed: only what renders otherwise is sent
    again = stream.parts(mark)
    assert "Pause between grids: <b>on</b>" in again["controls"]
    assert set(again) == {"controls"}
    volumes[0] = volumes[0].model_copy(
        update={"free_bytes": 123_000_000_000, "level": "critical", "used_fraction": 0.99}
    )
    mark = len(stream.batches)
    await rig.bus.publish(reported(free=10))
    await stream.until(lambda: "disk" in stream.parts(mark) and "popups" in stream.parts(mark))
    assert "123.0 GB" in stream.parts(mark)["disk"]
    assert "Disk low" in stream.parts(mark)["popups"]


async def test_reads_go_one_after_the_other_and_are_sent_in_order(rig: Rig) -> None:
    """The guarantee that lets the stream be the only writer of a part without versions: a
    read that starts later is sent later, so a page never gets an older state after a newer
    one. Changes that come while a read is held wait for it, and are read together after."""
    stream = rig.open(VIEWER)
    await all_connected(rig)
    mark = len(stream.batches)
    rig.gate.answer_first = True
    rig.gate.open.clear()  # session-api's answers are held from now on
    rig.session.pause = True
    await rig.bus.publish(changed(rig, "pause between grids on"))
    async with asyncio.timeout(5):
        await rig.gate.held.wait()  # read (pause on), and its answer held
    for enabled in (False, True, False):  # three more changes, the newest: pause off
        rig.session.pause = enabled
        await rig.bus.publish(changed(rig, f"pause between grids {enabled}"))
    await rig.bus.drain()
    reads = len(rig.reads())
    rig.gate.open.set()
    await stream.until(lambda: len([p for b in stream.batches[mark:] for p in b.parts]) == 2)
    sent = [html for b in stream.batches[mark:] for p, html in b.parts if p == "controls"]
    assert ["<b>on</b>" in sent[0], "<b>off</b>" in sent[1]] == [True, True], "oldest first"
    assert rig.gate.most_reading == 1, "never two reads of the session at once"
    assert len(rig.reads()) - reads == 3, "the changes during the held read: one more read"


async def test_a_change_session_api_commits_itself_reaches_every_page(rig: Rig) -> None:
    """The pause toggled with no live run has no event of its own; session-api's
    ``SessionChanged`` (published once it has committed the change) brings it to every page:
    the page that acted shows it from its stream too."""
    streams = [rig.open(VIEWER), rig.open(STAFF)]
    await all_connected(rig)
    assert "Pause between grids: <b>off</b>" in streams[0].parts()["controls"]
    rig.session.pause = True  # committed by session-api for a page's request
    marks = [len(s.batches) for s in streams]
    await rig.bus.publish(changed(rig, "pause between grids on"))
    for stream, mark in zip(streams, marks, strict=True):
        await stream.until(lambda s=stream, m=mark: "controls" in s.parts(m))  # type: ignore[misc]
        assert "Pause between grids: <b>on</b>" in stream.parts(mark)["controls"]
    other = SessionChanged(
        session_id=uuid4(), microscope_id="krios-2", change="run 1 starting", requested_by="x"
    )
    assert SessionFilter(rig.session.id, "krios-1")(other) is None


async def test_a_read_that_fails_in_part_sends_nothing(rig: Rig) -> None:
    """The microscopes cannot be read: the pop-ups and the disk panel would be drawn without
    them ("no data volume reported yet") over what the page shows. Nothing is sent until a
    whole read succeeds."""
    stream = rig.open(VIEWER)
    await all_connected(rig)
    assert "No data volume" not in stream.parts()["disk"]
    mark = len(stream.batches)
    rig.gate.failing = {"/api/microscopes"}
    volumes = rig.fake.scopes["krios-1"].volumes
    volumes[0] = volumes[0].model_copy(update={"free_bytes": 300_000_000_000})
    await rig.bus.publish(reported(free=500))
    async with asyncio.timeout(5):
        await rig.gate.failed.wait()
    assert stream.parts(mark) == {}
    rig.gate.failing = set()
    await rig.bus.publish(reported(free=400))  # session-api answers again: an event wakes the hub
    await stream.until(lambda: "disk" in stream.parts(mark))
    assert "300.0 GB" in stream.parts(mark)["disk"]


async def test_a_refresh_that_session_api_fails_is_tried_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not lost, tried again less and less often, and one warning per outage (not one every
    2 s for as long as session-api is down)."""
    monkeypatch.setattr(hub_module, "RETRY_S", 0.01)
    monkeypatch.setattr(hub_module, "RETRY_MAX_S", 0.04)
    stream = rig.open(VIEWER)
    await all_connected(rig)
    mark = len(stream.batches)
    rig.gate.failing = {"/api/sessions/"}
    caplog.set_level(logging.INFO, logger="ui.hub")
    await rig.bus.publish(state_changed(rig))
    async with asyncio.timeout(5):
        while rig.gate.failures < 5:  # tried again and again (the waits double, capped)
            rig.gate.failed.clear()
            await rig.gate.failed.wait()
    assert stream.parts(mark) == {}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "database unavailable" in warnings[0].getMessage()
    rig.gate.failing = set()
    await stream.until(lambda: "controls" in stream.parts(mark))  # the event was not lost
    assert any("answers again after" in r.getMessage() for r in caplog.records)


async def test_a_refused_token_ends_its_streams_and_the_read_goes_on(rig: Rig) -> None:
    ghost = rig.open(GHOST)  # the hub reads with the ghost's token first: 401
    await ghost.until(lambda: ghost.error is not None)
    viewer = rig.open(VIEWER)
    await viewer.until(lambda: len(viewer.parts()) == 5)
    assert isinstance(ghost.error, NotLoggedIn)
    assert viewer.error is None


async def test_other_tokens_are_checked_too(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "VERIFY_S", 0.0)  # check at every refresh
    viewer = rig.open(VIEWER)
    await viewer.until(lambda: len(viewer.parts()) == 5)
    ghost = rig.open(GHOST)  # say its login expires now: the hub reads with the viewer's
    await ghost.until(lambda: ghost.error is not None)
    assert ("GET", "/api/auth/me") in rig.fake.calls
    assert isinstance(ghost.error, NotLoggedIn)
    assert viewer.error is None


async def test_the_hub_and_its_subscriptions_go_with_the_last_stream(rig: Rig) -> None:
    before = {n for n in rig.bus._queues if n.startswith("transient.ui.")}
    for _ in range(3):
        rig.open(VIEWER)
    await all_connected(rig)
    assert len(rig.hubs) == 1
    assert len({n for n in rig.bus._queues if n.startswith("transient.ui.")} - before) == 3
    for task in rig.tasks:
        task.cancel()
    for task in rig.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(rig.hubs) == 0
    assert {n for n in rig.bus._queues if n.startswith("transient.ui.")} == before
