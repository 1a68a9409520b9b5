"""The shared refresh of live partials: one session-api read and one render per event for
every open stream of a session, log lines never held back by a refresh, unchanged parts not
resent, expired logins ended, hubs dropped with their last stream."""

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
from ui.hub import Batch, Hub, Hubs, relay, unversioned
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

        self.failing = False
        self.failed = asyncio.Event()
        self.failures = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.open.is_set() and request.url.path.startswith("/api/sessions/"):
            self.held.set()
            await self.open.wait()
        if self.failing and request.url.path.startswith("/api/sessions/"):
            self.failed.set()
            self.failures += 1
            return httpx.Response(503, json={"detail": "database unavailable"})
        return await self._inner.handle_async_request(request)


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
    event = RunStateChanged(
        run_id=RUN, session_id=rig.session.id, microscope_id="krios-1", state=RunState.RUNNING
    )
    return StateProjected.of(event)


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
        await stream.until(lambda s=stream, m=mark: "process" in s.parts(m))  # type: ignore[misc]

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
    assert "process" not in stream.parts(mark)
    rig.gate.open.set()
    await stream.until(lambda: "process" in stream.parts(mark))


async def test_unchanged_parts_are_resent_only_after_a_control_event(rig: Rig) -> None:
    stream = rig.open(VIEWER)
    await all_connected(rig)
    first = stream.parts()
    volumes = rig.fake.scopes["krios-1"].volumes
    volumes[0] = volumes[0].model_copy(update={"free_bytes": 300_000_000_000})
    mark = len(stream.batches)
    await rig.bus.publish(reported(free=500))
    await stream.until(lambda: "disk" in stream.parts(mark))
    # a disk report: the disk panel changed and is sent; the pop-ups render as before (but
    # for when they were read, data-v) and are not
    assert "300.0 GB" in stream.parts(mark)["disk"]
    assert "popups" not in stream.parts(mark)
    mark = len(stream.batches)
    await rig.bus.publish(state_changed(rig))
    await stream.until(lambda: "popups" in stream.parts(mark))
    # an event a control causes: the action parts are sent although they render as before,
    # since the acting page may show the control's answer instead; each says when it was read
    again = stream.parts(mark)
    assert {"process", "controls", "popups"} <= set(again)
    assert "disk" not in again and "queue" not in again  # not replaced by a control's answer
    assert unversioned(again["popups"]) == unversioned(first["popups"])
    assert 'data-v="' in again["popups"] and again["popups"] != first["popups"]
    volumes[0] = volumes[0].model_copy(
        update={"free_bytes": 123_000_000_000, "level": "critical", "used_fraction": 0.99}
    )
    mark = len(stream.batches)
    await rig.bus.publish(reported(free=10))
    await stream.until(lambda: "disk" in stream.parts(mark) and "popups" in stream.parts(mark))
    assert "123.0 GB" in stream.parts(mark)["disk"]
    assert "Disk low" in stream.parts(mark)["popups"]


async def test_a_change_session_api_commits_itself_reaches_every_page(rig: Rig) -> None:
    """The pause toggled with no live run has no event of its own; session-api's
    ``SessionChanged`` brings it to pages that did not act, and the action parts are sent
    (the acting page may show its answer instead)."""
    stream = rig.open(VIEWER)
    await all_connected(rig)
    assert "Pause between grids: <b>off</b>" in stream.parts()["controls"]
    rig.session.pause = True  # committed by session-api for another page's request
    mark = len(stream.batches)
    change = SessionChanged(
        session_id=rig.session.id,
        microscope_id="krios-1",
        change="pause between grids on",
        requested_by="operator",
    )
    await rig.bus.publish(StateProjected.of(change))
    await stream.until(lambda: "controls" in stream.parts(mark))
    assert "Pause between grids: <b>on</b>" in stream.parts(mark)["controls"]
    assert {"process", "controls", "popups"} <= set(stream.parts(mark))
    other = SessionChanged(
        session_id=uuid4(), microscope_id="krios-2", change="run 1 starting", requested_by="x"
    )
    assert SessionFilter(rig.session.id, "krios-1")(other) is None


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
    rig.gate.failing = True
    caplog.set_level(logging.INFO, logger="ui.hub")
    await rig.bus.publish(state_changed(rig))
    async with asyncio.timeout(5):
        while rig.gate.failures < 5:  # tried again and again (the waits double, capped)
            rig.gate.failed.clear()
            await rig.gate.failed.wait()
    assert stream.parts(mark) == {}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "database unavailable" in warnings[0].getMessage()
    rig.gate.failing = False
    await stream.until(lambda: "controls" in stream.parts(mark))  # the event was not lost
    assert {"process", "controls", "popups"} <= set(stream.parts(mark))
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
