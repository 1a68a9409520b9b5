"""A facility's database, seeded fast: microscopes, sessions, runs, grids, targets, exposures,
images, log lines, processed ids and audit, in the project's own tables (the migrated schema,
columns from ``session_api.db.models``), for the EXPLAIN test and ``benchmarks/scale.py``.

Each microscope screens its sessions one after another over ``span_days`` up to now, at
``rate_per_h`` exposures an hour while it screens; the newest session of each has a live run
(one of them the busy session, with ``busy_share`` of all exposures, at most ``busy_cap``). Rows
come out of the ten microscopes' timelines merged in time order, so ids grow with time and a
session's rows are interleaved with the others' as in a real database. They are written with
binary ``COPY`` (foreign-key triggers off, secondary indexes dropped first and rebuilt after),
then ``VACUUM ANALYZE``: a million exposures and ten million log lines take minutes, not hours.
"""

from __future__ import annotations

import heapq
import json
import random
import time
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table

from session_api.db import models as db
from support.facility_rows import NIL, Facility, Ids, Scope, Shape, plan

__all__ = ["Facility", "Shape", "seed"]

TABLES: list[Table] = [
    cast(Table, t.__table__)
    for t in (
        db.Microscope,
        db.Session,
        db.Grid,
        db.Run,
        db.Image,
        db.Target,
        db.Exposure,
        db.LogLine,
        db.Processed,
        db.AuditEntry,
    )
]
FLUSH = 20_000


async def seed(dsn: str, shape: Shape) -> Facility:
    """Fill the migrated, empty database at ``dsn`` (a ``postgresql://`` URL)."""
    t0 = time.perf_counter()
    rng = random.Random(shape.seed)
    ids = Ids(rng)
    fac = Facility(
        now=datetime.now(UTC).replace(microsecond=0),
        scopes=[],
        busy=ids.uuid(),
        busy_run=ids.uuid(),
        small=NIL,
    )
    plans = plan(shape, rng)
    fac.scopes = list(plans)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "SET session_replication_role = replica; SET maintenance_work_mem = '512MB';"
            " SET synchronous_commit = off"
        )
        saved = await _drop_indexes(conn)
        t1 = time.perf_counter()
        await _copy(conn, fac, shape, ids, plans)
        t2 = time.perf_counter()
        for ddl in saved:
            await conn.execute(ddl)
        t3 = time.perf_counter()
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('log_lines', 'id'), $1)", max(ids.log, 1)
        )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('audit', 'id'), $1)", max(ids.audit, 1)
        )
        await conn.execute("VACUUM ANALYZE")
        fac.phases = {
            "generate_and_copy": t2 - t1,
            "indexes": t3 - t2,
            "vacuum_analyze": time.perf_counter() - t3,
        }
    finally:
        await conn.close()
    fac.seconds = time.perf_counter() - t0
    return fac


async def _copy(
    conn: asyncpg.Connection, fac: Facility, shape: Shape, ids: Ids, plans: dict[str, list[int]]
) -> None:
    scopes = [Scope(fac, shape, ids, s, p) for s, p in plans.items()]
    columns = {t.name: [c.name for c in t.columns] for t in TABLES}
    buffers: dict[str, list[tuple[Any, ...]]] = {name: [] for name in columns}
    await conn.copy_records_to_table(
        "microscopes",
        columns=columns["microscopes"],
        records=[
            (s, f"Krios {s}", "simulator", json.dumps([]), 1e9, fac.now, None) for s in fac.scopes
        ],
    )
    for _at, _seq, (table, row) in heapq.merge(
        *(s.rows() for s in scopes), key=lambda r: (r[0], r[1])
    ):
        if table == "log_lines":
            ids.log += 1
            row["id"] = ids.log
        elif table == "audit":
            ids.audit += 1
            row["id"] = ids.audit
        buf = buffers[table]
        buf.append(tuple(row.get(c) for c in columns[table]))
        if len(buf) >= FLUSH:
            await conn.copy_records_to_table(table, columns=columns[table], records=buf)
            fac.counts[table] = fac.counts.get(table, 0) + len(buf)
            buf.clear()
    for table, buf in buffers.items():
        if buf:
            await conn.copy_records_to_table(table, columns=columns[table], records=buf)
            fac.counts[table] = fac.counts.get(table, 0) + len(buf)
    fac.counts["microscopes"] = len(fac.scopes)


async def _drop_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop the secondary indexes and unique constraints of the seeded tables; the DDL that
    puts them back, as the migrations made them."""
    names = [t.name for t in TABLES if t.name != "microscopes"]
    cons = await conn.fetch(
        "SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def "
        "FROM pg_constraint WHERE contype = 'u' AND conrelid::regclass::text = ANY($1)",
        names,
    )
    idx = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1) AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))",
        names,
    )
    for c in cons:
        await conn.execute(f'ALTER TABLE {c["t"]} DROP CONSTRAINT "{c["conname"]}"')
    for i in idx:
        await conn.execute(f'DROP INDEX "{i["indexname"]}"')
    return [i["indexdef"] for i in idx] + [
        f'ALTER TABLE {c["t"]} ADD CONSTRAINT "{c["conname"]}" {c["def"]}' for c in cons
    ]
