"""The outbox's rules on a clock the test turns: coalescing, rate limit, retries, bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from session_api.notify.notices import Notice
from session_api.notify.outbox import Outbox

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def notice(key: str, s: float = 0.0) -> Notice:
    return Notice(
        frozenset({"run_ended"}), key, f"text of {key}", T0 + timedelta(seconds=s), key=key
    )


def outbox(**kw: float) -> Outbox:
    values = {"coalesce_s": 10, "min_interval_s": 60, "retries": 2, "retry_s": 30, "max_pending": 5}
    values.update(kw)
    return Outbox(**values)  # type: ignore[arg-type]


def keys(due: list[object]) -> list[list[str]]:
    return [[n.key for n in d.notices] for d in due]  # type: ignore[attr-defined]


def test_a_burst_waits_coalesce_s_and_goes_as_one_message() -> None:
    box = outbox()
    box.add(1, notice("a"), now=0)
    box.add(1, notice("b", 3), now=3)
    assert box.take_due(9.9) == []
    assert box.next_due() == 10
    box.add(1, notice("c", 9), now=9)  # still in the burst: the window began at 0
    [due] = box.take_due(10)
    assert [n.key for n in due.notices] == ["a", "b", "c"] and due.attempt == 0
    assert box.take_due(10) == []


def test_the_same_key_collapses_into_the_newest() -> None:
    box = outbox()
    box.add(1, notice("prompt", 0), now=0)
    box.add(1, notice("other", 1), now=1)
    newer = notice("prompt", 2)
    box.add(1, newer, now=2)
    [due] = box.take_due(10)
    assert [n.key for n in due.notices] == ["other", "prompt"] and due.notices[1] is newer


def test_rate_limit_one_message_per_interval_with_everything_meanwhile() -> None:
    box = outbox(coalesce_s=1, min_interval_s=60)
    box.add(1, notice("a"), now=0)
    [first] = box.take_due(1)
    assert box.done(first, ok=True, now=1.2) == 0
    box.add(1, notice("b", 5), now=5)
    box.add(1, notice("c", 30), now=30)
    assert box.next_due() == 61  # last sent at 1, not at 5 + 1
    assert box.take_due(60.9) == []
    assert keys(box.take_due(61)) == [["b", "c"]]


def test_one_message_in_flight_per_destination_others_go_their_own_way() -> None:
    box = outbox(coalesce_s=0, min_interval_s=0)
    box.add(1, notice("a"), now=0)
    box.add(2, notice("x"), now=0)
    due = box.take_due(0)
    assert sorted(d.destination_id for d in due) == [1, 2]
    box.add(1, notice("b"), now=0.1)
    assert box.take_due(5) == []  # 1 is still on its way
    box.done(due[0] if due[0].destination_id == 1 else due[1], ok=True, now=6)
    assert keys(box.take_due(6)) == [["b"]]


def test_failure_is_retried_with_backoff_then_dropped() -> None:
    box = outbox(coalesce_s=0, min_interval_s=0, retries=2, retry_s=30)
    box.add(1, notice("a"), now=0)
    [due] = box.take_due(0)
    assert box.done(due, ok=False, now=1) == 0
    box.add(1, notice("b", 2), now=2)  # came meanwhile: goes with the retry
    assert box.next_due() == 31
    [retry] = box.take_due(31)
    assert [n.key for n in retry.notices] == ["a", "b"] and retry.attempt == 1
    assert box.done(retry, ok=False, now=32) == 0
    assert box.next_due() == 32 + 60  # doubled
    [last] = box.take_due(92)
    assert last.attempt == 2
    assert box.done(last, ok=False, now=93) == 2  # given up: both dropped
    assert box.next_due() is None and box.pending(1) == 0


def test_bounded_oldest_dropped_and_removed_destination_forgotten() -> None:
    box = outbox(max_pending=3)
    dropped = [box.add(1, notice(k, i), now=i) for i, k in enumerate("abcde")]
    assert dropped == [0, 0, 0, 1, 1]
    [due] = box.take_due(100)
    assert [n.key for n in due.notices] == ["c", "d", "e"]
    box.add(2, notice("z"), now=0)
    assert box.forget(2) == 1 and box.next_due() is None
