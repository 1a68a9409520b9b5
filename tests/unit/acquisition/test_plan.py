"""The screening plan's choices, skipping queue entries, and what the queue panel is sent."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from acquisition.plan import Plan, order, pick
from acquisition.queue import SHOWN, RunQueue
from acquisition.skips import Skips
from acquisition.waits import TargetSkipped
from proto import messages as m

GRID = uuid4()


def target(
    score: float, ice: float | None, cls: str = "good", kind: str = "square", parent: UUID = GRID
) -> m.Target:
    return m.Target(
        target_id=uuid4(),
        kind=kind,  # type: ignore[arg-type]
        grid_id=GRID,
        parent_id=parent,
        y=1,
        x=1,
        size_px=10,
        cls=cls,
        score=score,
        ice_nm=ice,
    )


def test_no_plan_is_todays_behaviour() -> None:
    assert Plan.of(None, 3, 4) == Plan(3, 4, "score", False, 1)
    partial = Plan.of(m.ScreeningPlan(holes_per_square=9, exposures_per_hole=2), 3, 4)
    assert partial == Plan(3, 9, "score", False, 2), "unset counts take the service defaults"
    assert "3 squares per grid, 9 holes per square, best score first, 2 movies" in (
        partial.describe()
    )
    atlas = Plan.of(m.ScreeningPlan(atlas_only=True, ordering="thinnest_ice"), 3, 4)
    assert atlas.describe().startswith("atlas only") and "thinnest ice first" in atlas.describe()


def test_thinnest_ice_first_within_the_usable_class() -> None:
    thick_good = target(0.99, 80)
    thin_good = target(0.50, 20)
    thinner_bad = target(0.90, 5, cls="empty")
    unknown = target(0.95, None)
    tie_low, tie_high = target(0.4, 30), target(0.8, 30)
    found = [thick_good, thin_good, thinner_bad, unknown, tie_low, tie_high]
    assert pick(found, 10, "thinnest_ice") == [thin_good, tie_high, tie_low, thick_good, unknown]
    assert pick(found, 10, "score") == [thick_good, unknown, tie_high, thin_good, tie_low]
    assert pick(found, 2, "thinnest_ice", skip=frozenset({thin_good.target_id})) == [
        tie_high,
        tie_low,
    ]
    assert pick(found, 0, "score") == []
    assert order([thin_good, thick_good], "score") == [thick_good, thin_good]


def test_skip_a_queued_target_and_the_rest_of_a_square() -> None:
    square = target(0.9, 10)
    holes = [target(0.5, 20, kind="hole", parent=square.target_id) for _ in range(3)]
    other = target(0.5, 20, kind="hole", parent=uuid4())
    queue, skips = RunQueue(), Skips()
    queue.add([*holes, other], "g1")
    done, words = skips.target(queue, holes[0].target_id, "ann")
    assert done and words == f"ann skipped hole {holes[0].target_id.hex[:6]} (queued)"
    done, words = skips.square(queue, square.target_id, "bob")
    assert done and "2 queued holes" in words
    assert [e.status for e in queue.entries] == ["skipped", "skipped", "skipped", "queued"]
    done, words = skips.square(queue, square.target_id, "bob")
    assert not done and "nothing of it is left" in words
    done, words = skips.target(queue, uuid4(), "ann")
    assert not done and "neither being acquired nor queued" in words


def test_the_target_being_acquired_is_skipped_at_its_next_safe_point() -> None:
    square = target(0.9, 10)
    hole, sibling = (target(0.5, 20, kind="hole", parent=square.target_id) for _ in range(2))
    queue, skips = RunQueue(), Skips()
    queue.add([hole, sibling], "g1")
    entry = queue.next()
    assert entry is not None and entry.target == hole
    skips.begin(entry)
    skips.check()  # nothing asked yet
    done, words = skips.square(queue, square.target_id, "ann")
    assert done and "the hole being acquired, at the next safe point" in words
    assert queue.entries[1].status == "skipped"
    with pytest.raises(TargetSkipped):
        skips.check()
    assert skips.end() == "ann", "a request not honoured is reported as late"
    assert skips.end() == "" and not skips.requested.is_set()


def test_every_target_taken_out_reaches_the_next_queue_update() -> None:
    """However many holes a skip takes out at once, each one's new status is in the next
    ``queue.updated`` (the projection sets each target's status from it), once."""
    square = target(0.9, 10)
    holes = [target(0.5, 20, kind="hole", parent=square.target_id) for _ in range(SHOWN + 20)]
    queue, skips = RunQueue(), Skips()
    queue.add(holes, "g1")
    for _ in range(7):
        entry = queue.next()
        assert entry is not None
        queue.mark(entry, "done")
    skips.square(queue, square.target_id, "ann")
    items = queue.items()
    skipped = {i.target_id for i in items if i.status == "skipped"}
    assert skipped == {h.target_id for h in holes[7:]}
    again = queue.items()
    assert len([i for i in again if i.status == "skipped"]) <= 5, "sent once, then only recent"
    counts = queue.counts()
    assert counts["skipped"] == len(holes) - 7 and counts["done"] == 7
