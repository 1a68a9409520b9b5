"""No statement session-api makes for a page, a route, the projection, the reconciler or
retention reads a large table from end to end: each is captured while every route is called
and every event kind projected against a seeded facility on PostgreSQL (analyzed, so the
planner's choice is the one it makes with real statistics), then EXPLAINed with its own
parameters. A sequential scan of a table that grows with the facility fails the test."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from proto.lease.memory import MemoryLeases
from session_api.db.engine import make_engine, migrate
from session_api.reconcile import reconcile_once
from session_api.retention import Policy, retain_once
from support.api_app import api_app
from support.database import fresh_database
from support.events import Cases
from support.facility import Shape, seed
from support.routes import aims, api_reads

pytestmark = pytest.mark.postgres

SHAPE = Shape(exposures=20_000, sessions=20_000, squares_per_grid=3, busy_share=0.4)
"""Big enough that every table growing with the facility spans hundreds of pages (a scan of
it is never the cheap way to a page of rows), small enough to seed in seconds."""
LARGE = {
    "sessions",
    "grids",
    "runs",
    "images",
    "targets",
    "exposures",
    "log_lines",
    "processed_messages",
    "audit",
}
Captured = list[tuple[str, Any]]


def _capture(engine: AsyncEngine, into: Captured) -> Any:
    def record(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if many and params and isinstance(params[0], list | tuple):  # executemany: the first
            params = params[0]
        into.append((statement, tuple(params or ())))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return record


async def _controls(clients: dict[str, httpx.AsyncClient], fac: Any) -> None:
    """The state-changing routes, once each (a new session: start, pause, targets, stop…)."""
    op, staff = clients["operator"], clients["staff"]
    body = {"name": "plans", "microscope_id": fac.scopes[1], "grids": ["a", "b"]}
    r = await op.post("/api/sessions", json=body)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert (await op.post(f"/api/sessions/{sid}/start")).status_code == 202
    assert (
        await op.put(f"/api/sessions/{sid}/pause-between-grids", json={"enabled": True})
    ).status_code == 200
    assert (
        await op.post(f"/api/sessions/{sid}/decision", json={"choice": "next_grid"})
    ).status_code == 409
    hole = {"target_ids": [str(uuid.uuid4())]}
    assert (await op.post(f"/api/sessions/{sid}/targets", json=hole)).status_code == 404
    assert (
        await op.request("DELETE", f"/api/sessions/{sid}/targets", json=hole)
    ).status_code == 404
    assert (await op.post(f"/api/sessions/{sid}/stop")).status_code == 202
    assert (await staff.post(f"/api/sessions/{sid}/kill")).status_code == 202
    assert (await staff.post(f"/api/sessions/{sid}/force-start")).status_code == 202
    r = await staff.post(f"/api/microscopes/{fac.scopes[1]}/lease/release")
    assert r.status_code in (200, 503)


def _seq_scans(plan: dict[str, Any]) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in LARGE:
        found.append(str(plan["Relation Name"]))
    for child in plan.get("Plans", []):
        found += _seq_scans(child)
    return found


async def test_no_statement_scans_a_large_table(tmp_path: Path) -> None:
    async with fresh_database("postgres", tmp_path) as url:
        engine = make_engine(url)
        await migrate(engine)
        await engine.dispose()

        fac = await seed(url.replace("postgresql+asyncpg", "postgresql"), SHAPE)
        assert all(fac.counts[t] >= 4000 for t in LARGE), str(fac.counts)
        async with api_app(url, tmp_path) as api:
            app, clients, sessions = api.app, api.clients, api.sessions
            target = await aims(sessions, fac)
            seen: Captured = []
            hook = _capture(sessions.kw["bind"], seen)
            for call in api_reads(fac, target):
                r = await clients[call.role].get(call.path)
                assert r.status_code == call.status, (call.name, r.text[:300])
            text = await clients["viewer"].get(f"/api/sessions/{fac.small}/logs?format=text")
            assert text.status_code == 200 and text.text.count("\n") > 100
            await _controls(clients, fac)
            cases = Cases(sessions, fac)
            for kind in cases.kinds:
                before, message = await cases.make(kind)
                for m in [*before, message]:
                    if kind == "log.recorded":
                        await app.state.projector.log_line(m)
                    else:
                        await app.state.projector.event(m)
            await reconcile_once(
                sessions, MemoryLeases(), heartbeat_timeout_s=1e6, start_timeout_s=1e6
            )
            old = SHAPE.span_days - 1  # the oldest day: every statement, few rows
            policy = Policy(
                archive_dir=tmp_path / "archive",
                log_lines_days=old,
                processed_days=old,
                targets_days=old,
                audit_days=old,
                exposures_days=old,
            )
            done = await retain_once(sessions, policy, now=fac.now)
            assert done and done["log_lines"] > 0 and done["targets"] > 0 and done["exposures"] > 0
            event.remove(sessions.kw["bind"].sync_engine, "before_cursor_execute", hook)

            bad: list[str] = []
            explained = 0
            async with sessions.kw["bind"].connect() as conn:
                for statement, params in {(s, repr(p)): (s, p) for s, p in seen}.values():
                    head = statement.lstrip().split(None, 1)[0].upper()
                    if head not in ("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"):
                        continue
                    raw = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params)
                    plan = raw.scalar()
                    plan = json.loads(plan) if isinstance(plan, str) else plan
                    explained += 1
                    if scans := _seq_scans(plan[0]["Plan"]):
                        short = " ".join(statement.split())[:300]
                        bad.append(f"{', '.join(sorted(set(scans)))} scanned by: {short}")
                await conn.rollback()
    assert explained > 100, f"only {explained} statements explained"
    assert not bad, "sequential scans of large tables:\n" + "\n\n".join(sorted(set(bad)))


async def test_every_execution_is_planned_with_its_own_parameters(tmp_path: Path) -> None:
    """A generic plan is costed for an average session; the busy one holds most of the log,
    and the generic plan for its last minute of lines walked all of them by id. The engine
    asks PostgreSQL for a custom plan at every execution (``db.engine.POSTGRES_SETTINGS``),
    on every pooled connection."""
    async with fresh_database("postgres", tmp_path) as url:
        engine = make_engine(url)
        try:
            async with engine.connect() as one, engine.connect() as two:
                for conn in (one, two):
                    mode = await conn.exec_driver_sql("SHOW plan_cache_mode")
                    assert mode.scalar() == "force_custom_plan"
        finally:
            await engine.dispose()
