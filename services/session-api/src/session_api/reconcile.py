"""Reconciling recorded runs with reality: a live run whose heartbeat stopped and whose
lease is not held by it is dead, and ends ``lost``."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto.lease.base import LeaseManager
from proto.states import ExitReason, RunState
from session_api.db.models import Run, const
from session_api.db.types import utcnow
from session_api.projection import apply_state

log = logging.getLogger(__name__)


async def is_alive(run: Run, leases: LeaseManager, heartbeat_timeout_s: float) -> tuple[bool, str]:
    """Whether a recorded live run is really alive, and why we think so."""
    holder = await leases.holder(run.microscope_id)
    holds = holder is not None and holder.run_id == run.id
    beat = run.heartbeat_at or run.started_at
    age = (utcnow() - beat).total_seconds()
    if holds and age <= heartbeat_timeout_s:
        return True, f"holds the lease, heartbeat {age:.0f} s ago"
    if holds:
        return True, f"holds the lease but its heartbeat is {age:.0f} s old (hung?)"
    return False, f"does not hold the lease of {run.microscope_id}; last heartbeat {age:.0f} s ago"


async def reconcile_once(
    sessions: async_sessionmaker[AsyncSession],
    leases: LeaseManager,
    *,
    heartbeat_timeout_s: float,
    start_timeout_s: float,
    suspects: dict[uuid.UUID, datetime] | None = None,
    caught_up: datetime | None = None,
) -> list[Run]:
    """End ``lost`` every live run that is silent and holds no lease; returns them.

    With ``suspects`` (kept by the caller between rounds) a run must look dead for another
    ``heartbeat_timeout_s`` before it is ended: a run that just released its lease on its
    way to ``ended`` is not declared lost while its last event is still on the way. And then
    only once the projection has ``caught_up`` past the moment it first looked dead (every
    event published before that time is in the database): under load the events can lag
    behind, and a run that ended well must not be called lost because its end is queued.
    ``None`` means unknown: nobody is ended.
    """
    now = utcnow()
    ended: list[Run] = []
    seen: set[uuid.UUID] = set()
    async with sessions() as db:
        live = (await db.scalars(select(Run).where(Run.state != const(RunState.ENDED.value)))).all()
        for run in live:
            beat = run.heartbeat_at
            silent = (
                now - beat > timedelta(seconds=heartbeat_timeout_s)
                if beat
                else now - run.started_at > timedelta(seconds=start_timeout_s)
            )
            if not silent:
                continue
            alive, why = await is_alive(run, leases, heartbeat_timeout_s)
            if alive:
                continue
            if suspects is not None:
                seen.add(run.id)
                first = suspects.setdefault(run.id, now)
                if now - first < timedelta(seconds=heartbeat_timeout_s):
                    continue
                if caught_up is None or caught_up < first:
                    log.info("run %s looks dead, but the events lag behind; waiting", run.id)
                    continue
            seen.discard(run.id)
            if await apply_state(db, run, RunState.ENDED, ExitReason.LOST, f"reconciled: {why}"):
                log.warning("run %s ended lost: %s", run.id, why)
                ended.append(run)
        await db.commit()
    if suspects is not None:
        for run_id in set(suspects) - seen:
            del suspects[run_id]
    return ended
