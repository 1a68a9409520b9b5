"""The queue panel's counters in words (no server needed)."""

from __future__ import annotations

from types import SimpleNamespace

from proto.api import QueueView
from ui.render import count_label, make_templates


def test_count_labels_are_words() -> None:
    assert count_label("squares_queued") == "squares queued"
    assert count_label("done") == "done"
    assert count_label("some_new_count") == "some new count"


def test_queue_counters_show_words_not_keys() -> None:
    counts = {"done": 2, "exposures": 7, "queued": 3, "squares_queued": 1, "holes_queued": 2}
    ctx = SimpleNamespace(
        queue=QueueView(run_id=None, items=[], counts=counts), version=None, instance="i"
    )
    html = make_templates().env.get_template("partials/_queue.html").render(ctx=ctx)
    assert '<li class="qs-squares_queued"><span>squares queued</span> <b class="num">1</b>' in html
    assert "<span>holes queued</span>" in html and "<span>exposures</span>" in html
    assert ">squares_queued<" not in html and ">holes_queued<" not in html
