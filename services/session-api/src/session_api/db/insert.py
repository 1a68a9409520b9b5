"""Inserting rows that may be there already, in one statement on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_new(db: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table``, skipping those whose key is taken (a redelivered or
    repeated event): one statement for all of them, where a lookup per row cost one each."""
    if not rows:
        return
    stmt = (pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)
    await db.execute(stmt.on_conflict_do_nothing(), list(rows))
