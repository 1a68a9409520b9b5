"""Operations (staff): queue depths and consumers, worker heartbeats, dead letters.

Replaying, discarding and purging dead letters are audited, as refusals and failures are.
``gridpilot dlq`` uses these routes too.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import select

from proto.api import (
    DeadLetterAction,
    DeadLetterView,
    OpsView,
    QueueStatsView,
    WorkerView,
    WorkQueue,
)
from proto.bus.base import Bus, DeadLetter
from proto.errors import BusUnavailable
from proto.topology import WORK_QUEUES, QueueSpec
from session_api.audit import Audit, AuditDep
from session_api.auth import Staff
from session_api.db.models import Worker
from session_api.db.types import utcnow
from session_api.deps import BusDep, DbDep

router = APIRouter(prefix="/api/ops", tags=["operations"])

SPECS = {spec.name: spec for spec in WORK_QUEUES if spec.durable}
PREVIEW_BYTES = 400
LETTERS_SHOWN = 100
"""Per queue on the overview; the queue's count says how many there are in all."""
BROKER_TIMEOUT_S = 5.0
STALE_AFTER_INTERVALS = 3

Key = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("")
async def overview(user: Staff, db: DbDep, bus: BusDep) -> OpsView:
    """Every durable queue (depth, consumers, dead letters), every worker's last heartbeat,
    and the dead letters themselves, oldest first per queue."""
    workers = await _workers(db)
    try:
        async with asyncio.timeout(BROKER_TIMEOUT_S):
            stats = await bus.queue_stats()
            letters = await _letters(bus, list(SPECS.values()), LETTERS_SHOWN)
    except (BusUnavailable, TimeoutError) as exc:
        return OpsView(
            checked_at=utcnow(),
            queues=[],
            workers=workers,
            dead_letters=[],
            broker_error=f"could not read the broker: {exc or 'timed out'}",
        )
    depth = {s.queue: s for s in stats}
    queues = [
        QueueStatsView(
            queue=s.queue,
            messages=s.messages,
            consumers=s.consumers,
            dead_letters=depth[f"dlq.{s.queue}"].messages if f"dlq.{s.queue}" in depth else None,
        )
        for s in stats
        if not s.queue.startswith("dlq.")
    ]
    return OpsView(checked_at=utcnow(), queues=queues, workers=workers, dead_letters=letters)


@router.get("/dead-letters")
async def dead_letters(
    user: Staff,
    bus: BusDep,
    queue: WorkQueue | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[DeadLetterView]:
    """The dead letters of one queue, or of all of them (the oldest ``limit`` per queue)."""
    specs = [SPECS[queue]] if queue else list(SPECS.values())
    try:
        return await _letters(bus, specs, limit)
    except BusUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


@router.post("/dead-letters/{queue}/{key}/replay", name="dlq-replay")
async def replay(
    queue: WorkQueue, key: Key, user: Staff, bus: BusDep, act: AuditDep
) -> DeadLetterAction:
    """Put the letter back on its queue as a new delivery (after the cause is fixed)."""
    return await _act(act, bus, queue, key, "replayed")


@router.post("/dead-letters/{queue}/{key}/discard", name="dlq-discard")
async def discard(
    queue: WorkQueue, key: Key, user: Staff, bus: BusDep, act: AuditDep
) -> DeadLetterAction:
    """Drop the letter for good."""
    return await _act(act, bus, queue, key, "discarded")


@router.post("/dead-letters/{queue}/purge", name="dlq-purge")
async def purge(queue: WorkQueue, user: Staff, bus: BusDep, act: AuditDep) -> DeadLetterAction:
    """Drop every letter of ``dlq.<queue>``."""
    try:
        count = await bus.purge_dead_letters(SPECS[queue])
    except BusUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    await act.commit(detail=f"{count} letters")
    return DeadLetterAction(queue=queue, action="purged", count=count)


async def _act(
    act: Audit,
    bus: Bus,
    queue: str,
    key: str,
    action: Literal["replayed", "discarded"],
) -> DeadLetterAction:
    """The broker changes the letter; the audit row commits as soon as the outcome is known
    (a refusal, 404 or 503, is audited by the app's handlers)."""
    spec = SPECS[queue]
    try:
        if action == "replayed":
            done = await bus.replay_dead_letter(spec, key)
        else:
            done = await bus.discard_dead_letter(spec, key)
    except BusUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    if not done:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no dead letter {key} in dlq.{queue} (replayed or discarded already?)",
        )
    await act.commit()
    return DeadLetterAction(queue=queue, action=action, count=1, key=key)


async def _letters(bus: Bus, specs: list[QueueSpec], limit: int) -> list[DeadLetterView]:
    out: list[DeadLetterView] = []
    for spec in specs:
        out.extend(_letter_view(x) for x in await bus.dead_letters(spec, limit))
    return out


def _letter_view(x: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        queue=x.queue,
        key=x.key,
        message_id=x.message_id,
        type=x.type,
        routing_key=x.routing_key,
        reason=x.reason,
        attempts=x.attempts,
        dead_at=x.dead_at,
        size_bytes=len(x.body),
        preview=x.body[:PREVIEW_BYTES].decode("utf-8", errors="replace"),
    )


async def _workers(db: DbDep) -> list[WorkerView]:
    now = utcnow()
    rows = (await db.scalars(select(Worker).order_by(Worker.service, Worker.instance))).all()
    views = []
    for w in rows:
        age = max(0.0, (now - w.seen_at).total_seconds())
        views.append(
            WorkerView(
                instance=w.instance,
                service=w.service,
                host=w.host,
                pid=w.pid,
                started_at=w.started_at,
                seen_at=w.seen_at,
                age_s=age,
                stale=age > STALE_AFTER_INTERVALS * w.interval_s,
                handled=w.handled,
            )
        )
    return views
