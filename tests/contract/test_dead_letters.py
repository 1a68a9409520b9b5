"""Operating the dead-letter queues and reading queue depths, on MemoryBus and on RabbitMQ."""

from __future__ import annotations

from uuid import UUID, uuid4

from proto.bus.base import Bus, DeadLetter, letter_key
from proto.errors import CorruptImage
from proto.messages import Message, StopRun
from proto.topology import ACQUISITION_COMMANDS, COMMANDS, PROCESSING_IMAGES, WORK_QUEUES
from support.inbox import Inbox
from support.observer import RecordingObserver

Q = ACQUISITION_COMMANDS.name


def stop() -> StopRun:
    return StopRun(run_id=uuid4(), requested_by="alice")


class FailsFirst(Inbox):
    """Refuses every message once (a permanent error), then takes it: a fixed bug."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[UUID] = set()

    async def __call__(self, message: Message) -> None:
        assert isinstance(message, StopRun)
        if message.message_id not in self.refused:
            self.refused.add(message.message_id)
            raise CorruptImage("/data/x.mrc", "truncated")
        await super().__call__(message)


async def test_replayed_letter_is_handled_and_leaves_the_dlq(
    bus: Bus, observer: RecordingObserver
) -> None:
    inbox = FailsFirst()
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, inbox)
    sent = stop()
    await bus.publish(sent)
    await observer.wait(Q, "dead_lettered")
    (letter,) = await bus.dead_letters(ACQUISITION_COMMANDS)
    assert letter.key == str(sent.message_id)
    assert letter.dead_at is not None

    assert await bus.replay_dead_letter(ACQUISITION_COMMANDS, letter.key)
    await inbox.wait()
    assert inbox.got == [sent]
    assert await bus.dead_letters(ACQUISITION_COMMANDS) == []
    assert not await bus.replay_dead_letter(ACQUISITION_COMMANDS, letter.key)


async def test_discard_drops_one_letter_and_keeps_the_others(
    bus: Bus, observer: RecordingObserver
) -> None:
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, Inbox(error=CorruptImage("/x", "bad")))
    first, second = stop(), stop()
    await bus.publish(first)
    await bus.publish(second)
    await bus.publish_raw(COMMANDS, "run.stop", b"{not json", type="run.stop")
    await observer.wait(Q, "dead_lettered", 3)

    assert await bus.discard_dead_letter(ACQUISITION_COMMANDS, str(first.message_id))
    assert not await bus.discard_dead_letter(ACQUISITION_COMMANDS, "no-such-letter")
    (oldest,) = await bus.dead_letters(ACQUISITION_COMMANDS, limit=1)
    assert oldest.key == str(second.message_id)
    left = await bus.dead_letters(ACQUISITION_COMMANDS)
    assert [x.body for x in left] == [second.model_dump_json().encode(), b"{not json"]
    malformed = left[1]
    assert await bus.discard_dead_letter(ACQUISITION_COMMANDS, malformed.key)
    assert [x.key for x in await bus.dead_letters(ACQUISITION_COMMANDS)] == [str(second.message_id)]
    assert await bus.purge_dead_letters(ACQUISITION_COMMANDS) == 1
    assert await bus.dead_letters(ACQUISITION_COMMANDS) == []


async def test_queue_stats_counts_waiting_messages_and_consumers(
    bus: Bus, observer: RecordingObserver
) -> None:
    await bus.subscribe(ACQUISITION_COMMANDS, StopRun, Inbox(error=CorruptImage("/x", "bad")))
    await bus.publish(stop())
    await observer.wait(Q, "dead_lettered")
    # nobody consumes processing.images in this test: what is published waits there
    await bus.publish_raw(
        PROCESSING_IMAGES.exchange, "exposure.acquired", b"{}", type="exposure.acquired"
    )
    stats = {s.queue: s for s in await bus.queue_stats()}
    expected = {n for spec in WORK_QUEUES for n in (spec.name, spec.dlq)}
    assert set(stats) == expected
    assert stats[Q].consumers == 1 and stats[Q].messages == 0
    assert stats[ACQUISITION_COMMANDS.dlq].messages == 1
    assert stats[PROCESSING_IMAGES.name].messages == 1
    assert stats[PROCESSING_IMAGES.name].consumers == 0


def test_a_letter_without_message_id_is_named_by_its_body() -> None:
    letter = DeadLetter("q", "run.stop", "run.stop", b"{not json", "malformed", 1)
    assert letter.key == letter_key(b"{not json") and letter.key.startswith("sha256-")
