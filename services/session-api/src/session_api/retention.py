"""Retention: old rows are written to archive files (``session_api.archive``), then deleted, a
small batch per transaction, so the database stays the size of its retention window.

Kinds and what "old" means (days from ``ApiSettings.retain_*_days``; ``None`` keeps them):

| kind | rows | old when |
|---|---|---|
| ``log_lines`` | log lines | sent before the cut-off |
| ``processed`` | projected message ids (duplicate detection) | projected before the cut-off |
| ``targets`` | a session's never-imaged squares and holes | its newest run ended before it |
| ``audit`` | the audit log (kept unless a setting says otherwise) | written before the cut-off |
| ``exposures`` | a session's exposures and their PNG records (likewise) | as ``targets`` |

Every statement reads through an index and a bounded number of rows; each batch waits its
turn behind the projection (``yield_to``: ``Projector.drain``), and between batches the event
loop and the database are free, so an event never waits for more than the one batch under way.
Two session-api replicas never retire at once (a PostgreSQL advisory lock).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import takewhile
from pathlib import Path
from typing import Any

from sqlalchemy import Result, delete, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from session_api.archive import ArchiveFile
from session_api.db.models import (
    AuditEntry,
    Exposure,
    Image,
    LogLine,
    Processed,
    RetentionMark,
    Run,
    Session,
    Target,
)
from session_api.db.types import utcnow
from session_api.settings import ApiSettings

log = logging.getLogger(__name__)

LOCK_KEY = 0x6772_6964_7265_7465  # "gridrete": one retention round in the whole deployment
Sessions = async_sessionmaker[AsyncSession]
Row = dict[str, Any]
Fetch = Callable[[AsyncSession, Any], Awaitable[tuple[list[Row], Any, bool]]]
"""The next rows to retire after a cursor (``None``: from the start): the rows, the cursor
after them and whether that was the last batch."""
Delete = Callable[[AsyncSession, list[Any]], Awaitable[None]]
Turn = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Policy:
    """What to keep, from the settings (see ``ApiSettings.retain_*``)."""

    archive_dir: Path
    log_lines_days: float | None = 30
    processed_days: float | None = 2
    targets_days: float | None = 30
    audit_days: float | None = None
    exposures_days: float | None = None
    archive_processed: bool = False
    batch: int = 1000
    file_rows: int = 50_000
    pause_s: float = 0.01

    @classmethod
    def of(cls, settings: ApiSettings) -> Policy:
        return cls(
            archive_dir=settings.archive_dir,
            log_lines_days=settings.retain_log_lines_days,
            processed_days=settings.retain_processed_days,
            targets_days=settings.retain_targets_days,
            audit_days=settings.retain_audit_days,
            exposures_days=settings.retain_exposures_days,
            archive_processed=settings.archive_processed,
            batch=settings.retention_batch,
        )


async def retain_once(
    sessions: Sessions,
    policy: Policy,
    *,
    now: datetime | None = None,
    progress: dict[str, int] | None = None,
    yield_to: Turn | None = None,
) -> dict[str, int] | None:
    """One round over every kind; the rows retired per kind, or ``None`` when another
    replica holds the round. ``progress`` (if given) counts the rows deleted so far, by
    kind, while the round runs; ``yield_to`` (if given) is awaited before every batch read or
    deleted (session-api passes ``Projector.drain``: the projection goes first)."""
    now = now or utcnow()
    done: dict[str, int] = {}
    async with _exclusive(sessions) as mine:
        if not mine:
            return None
        r = _Retirer(sessions, policy, progress if progress is not None else {}, yield_to)
        if policy.log_lines_days is not None:
            cut = now - timedelta(days=policy.log_lines_days)
            done["log_lines"] = await r.by_id("log_lines", LogLine, "sent_at", cut, True)
        if policy.processed_days is not None:
            cut = now - timedelta(days=policy.processed_days)
            done["processed"] = await r.processed(cut)
        if policy.audit_days is not None:
            cut = now - timedelta(days=policy.audit_days)
            done["audit"] = await r.by_id("audit", AuditEntry, "at", cut, True)
        if policy.targets_days is not None:
            cut = now - timedelta(days=policy.targets_days)
            done["targets"] = await r.finished_sessions("targets", cut, Unimaged())
        if policy.exposures_days is not None:
            cut = now - timedelta(days=policy.exposures_days)
            done["exposures"] = await r.finished_sessions("exposures", cut, Exposures())
    return done


@asynccontextmanager
async def _exclusive(sessions: Sessions) -> AsyncIterator[bool]:
    """Whether this process may run the round (on PostgreSQL a transaction-scoped advisory
    lock held for it; SQLite serves one process)."""
    async with sessions() as db:
        if db.get_bind().dialect.name != "postgresql":
            yield True
            return
        yield bool(await db.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))))
        await db.rollback()


class _Retirer:
    def __init__(
        self, sessions: Sessions, policy: Policy, progress: dict[str, int], yield_to: Turn | None
    ) -> None:
        self.sessions, self.policy, self.progress = sessions, policy, progress
        self.yield_to = yield_to

    async def turn(self) -> None:
        """Before a batch: whatever the projection has under way or waiting goes first."""
        if self.yield_to is not None:
            await self.yield_to()

    async def retire(
        self,
        kind: str,
        table: str,
        fetch: Fetch,
        remove: Delete,
        *,
        key: str,
        day: Callable[[Row], date],
        archive: bool = True,
    ) -> int:
        """Archive (into files of up to ``file_rows`` rows) and delete what ``fetch`` finds."""
        total, cursor, last = 0, None, False
        while not last:
            out = ArchiveFile(self.policy.archive_dir, kind, table) if archive else None
            ids: list[Any] = []
            first: date | None = None
            try:
                while len(ids) < self.policy.file_rows and not last:
                    await self.turn()
                    async with self.sessions() as db:
                        rows, cursor, last = await fetch(db, cursor)
                    if rows:
                        if out is not None:
                            await asyncio.to_thread(out.add, rows)
                        ids.extend(r[key] for r in rows)
                        first = first or day(rows[0])
                    await asyncio.sleep(self.policy.pause_s)
                if not ids or first is None:
                    if out is not None:
                        out.abort()
                    return total
                if out is not None:
                    name = f"{kind}-{ids[0]}-{ids[-1]}"
                    path = await asyncio.to_thread(out.close, first, name)
                    log.info("archived %d %s rows to %s", len(ids), kind, path)
            except BaseException:
                if out is not None:
                    out.abort()
                raise
            await self._delete(kind, ids, remove)
            total += len(ids)
        return total

    async def _delete(self, kind: str, ids: list[Any], remove: Delete) -> None:
        """Delete ``ids``: ``batch`` rows per transaction, ``DELETE_CHUNK`` per statement."""
        for i in range(0, len(ids), self.policy.batch):
            await self.turn()
            async with self.sessions() as db:
                part = ids[i : i + self.policy.batch]
                for j in range(0, len(part), DELETE_CHUNK):
                    await remove(db, part[j : j + DELETE_CHUNK])
                await db.commit()
            self.progress[kind] = self.progress.get(kind, 0) + len(part)
            await asyncio.sleep(self.policy.pause_s)

    # --- rows in id order: log lines, audit ----------------------------------------------

    async def by_id(
        self,
        kind: str,
        model: type[LogLine] | type[AuditEntry],
        at: str,
        cut: datetime,
        archive: bool,
    ) -> int:
        """Rows from the oldest id on while they are older than ``cut`` (ids grow with time: the
        first newer row ends the round, so a round reads only what it retires)."""
        table = model.__table__
        batch = self.policy.batch

        async def fetch(db: AsyncSession, after: int | None) -> tuple[list[Row], Any, bool]:
            query = select(table).where(table.c.id > (after or 0)).order_by(table.c.id)
            rows = _dicts(await db.execute(query.limit(batch)))
            old = list(takewhile(lambda r: r[at] < cut, rows))
            return old, old[-1]["id"] if old else after, len(old) < batch

        async def remove(db: AsyncSession, ids: list[Any]) -> None:
            await db.execute(delete(model).where(table.c.id.in_(ids)))

        return await self.retire(
            kind,
            model.__tablename__,
            fetch,
            remove,
            key="id",
            day=lambda r: r[at].date(),
            archive=archive,
        )

    # --- processed message ids ------------------------------------------------------------

    async def processed(self, cut: datetime) -> int:
        batch = self.policy.batch

        async def fetch(db: AsyncSession, after: Any) -> tuple[list[Row], Any, bool]:
            query = select(Processed.__table__).where(Processed.at < cut)
            if after is not None:
                query = query.where(tuple_(Processed.at, Processed.message_id) > after)
            query = query.order_by(Processed.at, Processed.message_id).limit(batch)
            rows = _dicts(await db.execute(query))
            cursor = (rows[-1]["at"], rows[-1]["message_id"]) if rows else after
            return rows, cursor, len(rows) < batch

        async def remove(db: AsyncSession, ids: list[Any]) -> None:
            await db.execute(delete(Processed).where(Processed.message_id.in_(ids)))

        return await self.retire(
            "processed",
            "processed_messages",
            fetch,
            remove,
            key="message_id",
            day=lambda r: r["at"].date(),
            archive=self.policy.archive_processed,
        )

    # --- per finished session: unimaged targets, exposures ---------------------------------

    async def finished_sessions(self, kind: str, cut: datetime, rows: _SessionRows) -> int:
        """Retire ``rows`` of every session whose newest run ended before ``cut``, oldest
        first, a hundred sessions at a time (a mark per kind remembers how far it went, so a
        session is handled once per ending, and again only if it runs and ends again)."""
        total = 0
        while True:
            await self.turn()
            async with self.sessions() as db:
                mark = await db.get(RetentionMark, kind)
                query = (
                    select(Run.id, Run.session_id, Run.ended_at)
                    .join(Session, Session.latest_run_id == Run.id)
                    .where(Run.ended_at < cut)
                    .order_by(Run.ended_at, Run.id)
                    .limit(SESSIONS_PER_ROUND)
                )
                if mark is not None:
                    query = query.where(tuple_(Run.ended_at, Run.id) > (mark.ended_at, mark.run_id))
                due = (await db.execute(query)).all()
                ids = list(await rows.ids(db, [d.session_id for d in due])) if due else []
            if not due:
                return total
            first = due[0].ended_at
            assert first is not None  # Run.ended_at < cut
            total += await self._by_ids(kind, rows, ids, first.date())
            last = due[-1]
            async with self.sessions() as db:
                row = await db.get(RetentionMark, kind)
                if row is None:
                    db.add(RetentionMark(kind=kind, ended_at=last.ended_at, run_id=last.id))
                else:
                    row.ended_at, row.run_id = last.ended_at, last.id
                await db.commit()

    async def _by_ids(self, kind: str, rows: _SessionRows, ids: Sequence[Any], day: date) -> int:
        """Retire the rows ``ids`` (found once; then read and deleted a batch at a time)."""
        batch = self.policy.batch

        async def fetch(db: AsyncSession, at: int | None) -> tuple[list[Row], Any, bool]:
            start = at or 0
            chunk = list(ids[start : start + batch])
            found = await rows.read(db, chunk) if chunk else []
            return found, start + batch, start + batch >= len(ids)

        if not ids:
            return 0
        return await self.retire(kind, rows.table, fetch, rows.remove, key="id", day=lambda _: day)


SESSIONS_PER_ROUND = 100
DELETE_CHUNK = 100
"""Ids per DELETE: a hundred primary-key probes stay cheaper than reading the table, even a
small one, so the planner never scans it to delete them."""


class _SessionRows:
    """What one kind retires of finished sessions: which ids, their rows, how to delete."""

    table = ""

    async def ids(self, db: AsyncSession, sessions: list[uuid.UUID]) -> Sequence[Any]:
        raise NotImplementedError

    async def read(self, db: AsyncSession, ids: list[Any]) -> list[Row]:
        raise NotImplementedError

    async def remove(self, db: AsyncSession, ids: list[Any]) -> None:
        raise NotImplementedError


class Unimaged(_SessionRows):
    """Squares and holes never imaged: no square image, no exposure, not done; what a run
    left queued goes too (a session restarted after this starts afresh on its squares)."""

    table = "targets"

    async def ids(self, db: AsyncSession, sessions: list[uuid.UUID]) -> Sequence[Any]:
        query = (
            select(Target.id)
            .where(
                Target.session_id.in_(sessions),
                Target.image_id.is_(None),
                or_(Target.status.is_(None), Target.status.not_in(("done", "acquiring"))),
                ~exists().where(Exposure.hole_id == Target.id),
            )
            .order_by(Target.id)
        )
        return (await db.scalars(query)).all()

    async def read(self, db: AsyncSession, ids: list[Any]) -> list[Row]:
        query = select(Target.__table__).where(Target.id.in_(ids)).order_by(Target.id)
        return _dicts(await db.execute(query))

    async def remove(self, db: AsyncSession, ids: list[Any]) -> None:
        await db.execute(delete(Target).where(Target.id.in_(ids)))


class Exposures(_SessionRows):
    """Exposures, each archived with its thumbnail's and spectrum's records."""

    table = "exposures"

    async def ids(self, db: AsyncSession, sessions: list[uuid.UUID]) -> Sequence[Any]:
        query = (
            select(Exposure.id)
            .where(Exposure.session_id.in_(sessions))
            .order_by(Exposure.session_id, Exposure.acquired_at, Exposure.id)
        )
        return (await db.scalars(query)).all()

    async def read(self, db: AsyncSession, ids: list[Any]) -> list[Row]:
        rows = _dicts(await db.execute(select(Exposure.__table__).where(Exposure.id.in_(ids))))
        pngs = {r["thumbnail_id"] for r in rows} | {r["spectrum_id"] for r in rows}
        found = _dicts(await db.execute(select(Image.__table__).where(Image.id.in_(pngs))))
        images = {i["id"]: i for i in found}
        return [
            {
                **r,
                "images": [images[i] for i in (r["thumbnail_id"], r["spectrum_id"]) if i in images],
            }
            for r in rows
        ]

    async def remove(self, db: AsyncSession, ids: list[Any]) -> None:
        query = select(Exposure.thumbnail_id, Exposure.spectrum_id).where(Exposure.id.in_(ids))
        pngs = {i for pair in (await db.execute(query)).all() for i in pair} - {None}
        await db.execute(delete(Exposure).where(Exposure.id.in_(ids)))
        await db.execute(delete(Image).where(Image.id.in_(pngs)))


def _dicts(result: Result[Any]) -> list[Row]:
    return [dict(r) for r in result.mappings().all()]
