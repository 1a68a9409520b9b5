"""The live feed on a MemoryBus: subscribe first, replay, de-duplicate, filter, resync."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from proto.api import LogLineView
from proto.bus.memory import MemoryBus
from proto.messages.image import QueueUpdated
from proto.messages.log import LogRecorded
from proto.messages.projection import StateProjected
from proto.messages.run import RunHeartbeatSent, RunStateChanged
from proto.messages.session import SessionChanged
from proto.states import RunState
from ui import live
from ui.live import REPLAY_MARGIN, Changed, Feed, Item, LogLines, decode_cursor, encode_cursor
from ui.views import FacilityFilter, SessionFilter

SID = uuid4()
RUN = uuid4()


def record(text: str, session: str | None = None, run: object = None) -> LogRecorded:
    return LogRecorded(
        run_id=run,  # type: ignore[arg-type]
        service="acquisition",
        panel="acquisition",
        level="info",
        logger="t",
        text=text,
        session_id=session if session is not None else str(SID),
    )


def stored(rec: LogRecorded, n: int) -> LogLineView:
    return LogLineView(
        id=n,
        message_id=rec.message_id,
        sent_at=rec.sent_at,
        run_id=rec.run_id,
        service=rec.service,
        panel=rec.panel,
        level=rec.level,
        text=rec.text,
    )


async def take(it: AsyncIterator[Item], n: int) -> list[Item]:
    async with asyncio.timeout(5):
        return [await anext(it) for _ in range(n)]


def texts(items: list[Item]) -> list[str]:
    return [ln.text for i in items if isinstance(i, LogLines) for ln in i.lines]


async def test_replay_then_live_without_duplicates(membus: MemoryBus) -> None:
    old = record("old line")
    racing = record("published between subscribe and fetch")
    store = [stored(old, 1)]
    asked: list[datetime | None] = []

    async def fetch(since: datetime | None) -> list[LogLineView]:
        asked.append(since)
        # The line is published on the bus after we subscribed and is already stored:
        # the feed gets it twice and must send it once.
        await membus.publish(racing)
        store.append(stored(racing, 2))
        return list(store)

    feed = Feed(membus, SessionFilter(SID, "krios-1"), fetch)
    it = feed.items()
    first = await take(it, 2)
    assert asked == [None]
    assert texts(first) == ["old line", "published between subscribe and fetch"]
    assert isinstance(first[1], Changed) and "*" in first[1].parts
    await membus.publish(record("live line"))
    (nxt,) = await take(it, 1)
    assert texts([nxt]) == ["live line"]
    await it.aclose()


async def test_cursor_asks_from_cursor_minus_margin(membus: MemoryBus) -> None:
    at = datetime(2025, 3, 4, 10, 0, 0, 123000, tzinfo=UTC)
    asked: list[datetime | None] = []

    async def fetch(since: datetime | None) -> list[LogLineView]:
        asked.append(since)
        return []

    it = Feed(membus, SessionFilter(SID, "k"), fetch, decode_cursor(encode_cursor(at))).items()
    await take(it, 1)
    assert asked == [at - REPLAY_MARGIN]
    await it.aclose()


def test_cursor_codec() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at)) == at
    for bad in (None, "", "abc", "12.5", "9" * 40, "-5"):
        assert decode_cursor(bad) is None


async def test_lines_carry_the_newest_cursor(membus: MemoryBus) -> None:
    t = datetime.now(UTC)
    newer = record("b").model_copy(update={"sent_at": t})
    older = record("a").model_copy(update={"sent_at": t - timedelta(seconds=5)})

    async def fetch(since: datetime | None) -> list[LogLineView]:
        return [stored(newer, 1), stored(older, 2)]

    it = Feed(membus, SessionFilter(SID, "k"), fetch).items()
    (lines, _) = await take(it, 2)
    assert isinstance(lines, LogLines) and lines.cursor == encode_cursor(t)
    await it.aclose()


async def test_other_sessions_are_filtered_and_runs_learned(membus: MemoryBus) -> None:
    where = SessionFilter(SID, "krios-1")
    it = Feed(membus, where).items()
    await take(it, 1)
    await membus.publish(record("someone else", session=str(uuid4())))
    running = RunStateChanged(
        run_id=RUN, session_id=SID, microscope_id="krios-1", state=RunState.RUNNING
    )
    await membus.publish(running)  # the raw event: session-api may not have it yet
    await membus.publish(StateProjected.of(running))
    (changed,) = await take(it, 1)
    assert isinstance(changed, Changed) and {"process", "controls", "popups"} <= changed.parts
    assert RUN in where.run_ids
    await membus.publish(record("by run id only", session="", run=RUN))
    (lines,) = await take(it, 1)
    assert texts([lines]) == ["by run id only"]
    await it.aclose()


async def test_queue_updates_carry_their_message(membus: MemoryBus) -> None:
    it = Feed(membus, SessionFilter(SID, "k", {RUN})).items()
    await take(it, 1)
    msg = QueueUpdated(run_id=RUN, session_id=SID, items=(), counts={"done": 3})
    await membus.publish(StateProjected.of(msg))
    (changed,) = await take(it, 1)
    assert isinstance(changed, Changed) and changed.parts == {"queue"}
    assert changed.messages[0].message_id == msg.message_id
    await it.aclose()


async def test_subscription_is_dropped_when_the_page_goes(membus: MemoryBus) -> None:
    before = {n for n in membus._queues if n.startswith("transient.ui.")}
    it = Feed(membus, SessionFilter(SID, "k")).items()
    await take(it, 1)
    during = {n for n in membus._queues if n.startswith("transient.ui.")}
    assert len(during - before) == 1
    await it.aclose()
    assert {n for n in membus._queues if n.startswith("transient.ui.")} == before


async def test_overflow_resyncs_from_history(
    membus: MemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "INBOX_SIZE", 2)
    recs = [record(f"line {i}") for i in range(5)]
    store: list[LogLineView] = []

    async def fetch(since: datetime | None) -> list[LogLineView]:
        return list(store)

    it = Feed(membus, SessionFilter(SID, "k"), fetch).items()
    await take(it, 1)
    for i, rec in enumerate(recs):
        store.append(stored(rec, i + 1))
        await membus.publish(rec)
    await membus.drain()
    got = await take(it, 2)
    assert sorted(texts(got)) == [f"line {i}" for i in range(5)]
    assert isinstance(got[-1], Changed) and "*" in got[-1].parts
    await it.aclose()


def test_facility_filter_maps_runs_to_cards() -> None:
    where = FacilityFilter()
    beat = RunHeartbeatSent(
        run_id=RUN,
        session_id=SID,
        microscope_id="glacios",
        state=RunState.RUNNING,
        host="h",
        pid=1,
    )
    assert where(beat) == {"card:glacios"}
    queue = QueueUpdated(run_id=RUN, session_id=SID, items=(), counts={})
    assert where(queue) == {"card:glacios"}
    stranger = QueueUpdated(run_id=uuid4(), session_id=SID, items=(), counts={})
    assert where(stranger) == {"*"}
    assert where(record("x")) is None
    starting = SessionChanged(
        run_id=uuid4(),
        session_id=SID,
        microscope_id="krios-2",
        change="run 1 starting",
        requested_by="operator",
    )
    assert where(starting) == {"card:krios-2"}  # a run row created starting shows at once


async def test_a_line_stored_late_is_caught_up_once_a_live_line_is(
    membus: MemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A line published just before the feed subscribed reaches the store after both the
    # first fetch and the first catch-up: the feed fetches again once a live line has come.
    monkeypatch.setattr(live, "CATCH_UP_AFTER_S", 0.01)
    late = record("published before the feed subscribed, stored late")
    store: list[LogLineView] = []
    fetches: list[datetime | None] = []
    second = asyncio.Event()

    async def fetch(since: datetime | None) -> list[LogLineView]:
        fetches.append(since)
        if len(fetches) == 2:
            second.set()
        return list(store)

    cursor = decode_cursor(encode_cursor(datetime.now(UTC) - timedelta(seconds=1)))
    it = Feed(membus, SessionFilter(SID, "k"), fetch, cursor).items()
    (resync,) = await take(it, 1)
    assert isinstance(resync, Changed) and resync.resync
    got = asyncio.create_task(take(it, 2))
    async with asyncio.timeout(5):
        await second.wait()  # the first catch-up found nothing new
    now_live = record("live")
    store.extend([stored(late, 1), stored(now_live, 2)])
    await membus.publish(now_live)
    assert texts(await got) == ["live", "published before the feed subscribed, stored late"]
    assert len(fetches) == 3
    await it.aclose()
