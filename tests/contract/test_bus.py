"""The bus contract, written once and run on MemoryBus and on RabbitMQ."""

from __future__ import annotations

from uuid import uuid4

import pytest

from proto.bus.base import Bus
from proto.errors import BusUnavailable, CorruptImage
from proto.messages import LogRecorded, Message, RunStateChanged, SquaresFound, StopRun
from proto.states import RunState
from proto.topology import ACQUISITION_COMMANDS, COMMANDS, EVENTS, LOGS, transient_queue
from support.inbox import Inbox
from support.observer import RecordingObserver

Q = ACQUISITION_COMMANDS.name


def stop(**kw: object) -> StopRun:
    return StopRun(run_id=uuid4(), requested_by="alice", **kw)  # type: ignore[arg-type]


def state_changed() -> RunStateChanged:
    return RunStateChanged(
        run_id=uuid4(), session_id=uuid4(), microscope_id="krios-1", state=RunState.RUNNING
    )


async def test_round_trip_keeps_every_field(bus: Bus) -> None:
    inbox = Inbox()
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, inbox)
    sent = stop()
    await bus.publish(sent)
    await inbox.wait()
    assert inbox.got == [sent]


async def test_topic_routing_matches_star_and_hash(bus: Bus) -> None:
    star, hash_, logs = Inbox(), Inbox(), Inbox()
    await bus.subscribe(transient_queue("t", EVENTS, ("run.*",)), Message, star)
    await bus.subscribe(transient_queue("t", EVENTS, ("#",)), Message, hash_)
    await bus.subscribe(transient_queue("t", LOGS, ("*.error",)), Message, logs)
    squares = SquaresFound(run_id=uuid4(), grid_id=uuid4(), atlas_id=uuid4(), squares=())
    await bus.publish(state_changed())
    await bus.publish(squares)
    for level in ("info", "error"):
        await bus.publish(
            LogRecorded(
                service="acquisition", panel="acquisition", level=level, logger="t", text=level
            )
        )
    await hash_.wait(2)
    await star.wait(1)
    await logs.wait(1)
    assert [type(m) for m in hash_.got] == [RunStateChanged, SquaresFound]
    assert [type(m) for m in star.got] == [RunStateChanged]
    assert [m.text for m in logs.got if isinstance(m, LogRecorded)] == ["error"]


async def test_unroutable_publish_raises(bus: Bus) -> None:
    with pytest.raises(BusUnavailable, match="unroutable"):
        await bus.publish_raw(COMMANDS, "nobody.listens.here", b"{}", type="nothing")


async def test_malformed_json_is_dead_lettered_at_once(
    bus: Bus, observer: RecordingObserver
) -> None:
    inbox = Inbox()
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, inbox)
    await bus.publish_raw(COMMANDS, "run.stop", b"{not json", type="run.stop")
    await observer.wait(Q, "dead_lettered")
    (letter,) = await bus.dead_letters(ACQUISITION_COMMANDS)
    assert "not JSON" in letter.reason
    assert letter.attempts == 1
    assert letter.body == b"{not json"
    assert inbox.calls == 0


async def test_invalid_message_is_dead_lettered_naming_the_field(
    bus: Bus, observer: RecordingObserver
) -> None:
    inbox = Inbox()
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, inbox)
    body = stop().model_dump_json(exclude={"requested_by"}).encode()
    await bus.publish_raw(COMMANDS, "run.stop", body, type="run.stop")
    await observer.wait(Q, "dead_lettered")
    (letter,) = await bus.dead_letters(ACQUISITION_COMMANDS)
    assert "requested_by" in letter.reason
    assert inbox.calls == 0
    # the consumer survived: a good message still gets through
    await bus.publish(stop())
    await inbox.wait()


async def test_failing_handler_is_dead_lettered_after_five_deliveries(
    bus: Bus, observer: RecordingObserver
) -> None:
    inbox = Inbox(fail=1000)
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, inbox)
    await bus.publish(stop())
    await observer.wait(Q, "dead_lettered")
    assert inbox.calls == 5
    assert observer.count(Q, "retry") == 4
    (letter,) = await bus.dead_letters(ACQUISITION_COMMANDS)
    assert letter.attempts == 5
    assert "failed 5 times" in letter.reason and "flaky failure 5" in letter.reason


async def test_transient_failure_is_retried_then_handled(
    bus: Bus, observer: RecordingObserver
) -> None:
    inbox = Inbox(fail=2)
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, inbox)
    await bus.publish(stop())
    await inbox.wait()
    assert inbox.calls == 3
    assert await bus.dead_letters(ACQUISITION_COMMANDS) == []


async def test_permanent_error_is_dead_lettered_at_once(
    bus: Bus, observer: RecordingObserver
) -> None:
    inbox = Inbox(error=CorruptImage("/data/x.mrc", "truncated after 12 of 40 frames"))
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, inbox)
    await bus.publish(stop())
    await observer.wait(Q, "dead_lettered")
    assert inbox.calls == 1
    (letter,) = await bus.dead_letters(ACQUISITION_COMMANDS)
    assert letter.reason.startswith("CorruptImage: corrupt image /data/x.mrc: truncated")


async def test_redelivered_message_id_is_handled_once(
    bus: Bus, observer: RecordingObserver
) -> None:
    inbox = Inbox()
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, inbox)
    message = stop()
    await bus.publish(message)
    await bus.publish(message)
    await observer.wait(Q, "duplicate")
    assert inbox.got == [message]


async def test_unknown_type_on_a_wildcard_queue_is_ignored(
    bus: Bus, observer: RecordingObserver
) -> None:
    inbox = Inbox()
    spec = transient_queue("t", EVENTS, ("#",))
    await bus.subscribe(spec, Message, inbox)
    await bus.publish_raw(EVENTS, "widget.invented", b'{"x": 1}', type="widget.invented")
    await bus.publish(state_changed())
    await inbox.wait()
    assert observer.count(spec.name, "ignored") == 1
    assert [type(m) for m in inbox.got] == [RunStateChanged]


async def test_closed_subscription_receives_nothing_more(bus: Bus) -> None:
    inbox, other = Inbox(), Inbox()
    sub = await bus.subscribe(transient_queue("t", EVENTS, ("run.*",)), Message, inbox)
    await bus.subscribe(transient_queue("t", EVENTS, ("run.*",)), Message, other)
    await bus.publish(state_changed())
    await inbox.wait()
    await sub.close()
    await bus.publish(state_changed())
    await other.wait(2)
    assert len(inbox.got) == 1
