"""The operations templates with empty, odd and hostile data (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from proto.api import DeadLetterView, OpsView, QueueStatsView, WorkerView
from ui.auth import User
from ui.render import make_templates

NOW = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
STAFF = User("root", "staff", "t")


def render(ops: OpsView) -> str:
    env = make_templates().env
    return env.get_template("pages/operations.html").render(
        user=STAFF, nav="operations", ops=ops, refresh_s=5, csrf="token"
    )


def test_nothing_at_all() -> None:
    html = render(OpsView(checked_at=NOW, queues=[], workers=[], dead_letters=[]))
    assert "No queue could be read." in html
    assert "No worker has reported yet." in html
    assert "No dead letters." in html
    # drawn by its own GET only: every 5 s, and when an action's answer says so
    assert 'hx-trigger="every 5s, ops-changed from:body" hx-sync="this:replace"' in html


def test_broker_down_keeps_the_workers() -> None:
    worker = WorkerView(
        instance="node-3:77",
        service="processing",
        host="node-3",
        pid=77,
        started_at=NOW,
        seen_at=NOW,
        age_s=95.0,
        stale=True,
        handled=3,
    )
    html = render(
        OpsView(
            checked_at=NOW,
            queues=[],
            workers=[worker],
            dead_letters=[],
            broker_error="could not read the broker: timed out",
        )
    )
    assert "could not read the broker: timed out" in html
    assert ">stale<" in html and "1 min 35 s ago" in html


def test_odd_letters_are_escaped_and_named() -> None:
    queue = QueueStatsView(queue="processing.images", messages=12, consumers=0, dead_letters=1)
    dlq = QueueStatsView(queue="dlq.x", messages=1, consumers=0, dead_letters=None)
    letter = DeadLetterView(
        queue="processing.images",
        key="sha256-0123456789abcdef",
        message_id=None,
        type="",
        routing_key="",
        reason="<script>alert(1)</script> failed 5 times",
        attempts=5,
        dead_at=None,
        size_bytes=0,
        preview="\ufffd\ufffd",
    )
    html = render(OpsView(checked_at=NOW, queues=[queue, dlq], workers=[], dead_letters=[letter]))
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "no consumer" in html
    assert 'id="dlq-processing-images"' in html
    assert "/operations/dead-letters/processing.images/sha256-0123456789abcdef/replay" in html
    assert 'hx-target="#messages" hx-post="/operations/dead-letters/processing.images/' in html
