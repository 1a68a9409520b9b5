"""Every list of session-api is a keyset page, newest first, with its filters applied before
the page is cut; the sessions list costs the same statements for 5 rows or 50; the text log
download streams (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from session_api.db.models import AuditEntry, Exposure, Grid, LogLine, Microscope, Run, Session
from session_api.db.types import utcnow
from session_api.routes import logs as log_routes
from support.api_app import Api, api_app
from support.database import fresh_database

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
T0 = utcnow() - timedelta(days=3)


@pytest.fixture(params=DATABASES)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with fresh_database(request.param, tmp_path) as url, api_app(url, tmp_path) as a:
        yield a


async def _seed(api: Api, sessions: int = 60) -> list[uuid.UUID]:
    """``sessions`` sessions a minute apart on two scopes; every 20th one ended a run, the
    rest never started; the newest one has 30 exposures and 50 log lines of two panels."""
    ids = []
    async with api.sessions() as db:
        db.add_all([Microscope(id="m1", name="M1"), Microscope(id="m2", name="M2")])
        await db.flush()
        for i in range(sessions):
            s = Session(
                id=uuid.uuid4(),
                name=f"s{i:03d}",
                microscope_id=f"m{i % 2 + 1}",
                created_by="op",
                created_at=T0 + timedelta(minutes=i),
            )
            db.add(s)
            await db.flush()
            db.add_all(Grid(session_id=s.id, name=f"g{k}", position=k) for k in (1, 2))
            if i % 20 == 0:
                run = Run(
                    id=uuid.uuid4(),
                    session_id=s.id,
                    microscope_id=s.microscope_id,
                    number=1,
                    state="ended",
                    exit_reason="completed",
                    requested_by="op",
                    exposures=7,
                )
                db.add(run)
                s.latest_run_id = run.id
            ids.append(s.id)
        newest = ids[-1]
        run = Run(
            id=uuid.uuid4(),
            session_id=newest,
            microscope_id="m2",
            number=1,
            state="running",
            requested_by="op",
            exposures=30,
        )
        db.add(run)
        (await db.get(Session, newest)).latest_run_id = run.id  # type: ignore[union-attr]
        for k in range(30):
            db.add(
                Exposure(
                    id=uuid.uuid4(),
                    session_id=newest,
                    run_id=run.id,
                    grid_id=uuid.uuid4(),
                    hole_id=uuid.uuid4(),
                    path=f"/data/{k}.mrc",
                    acquired_at=T0 + timedelta(hours=2, minutes=k),
                )
            )
        for k in range(50):
            db.add(
                LogLine(
                    message_id=uuid.uuid4(),
                    sent_at=T0 + timedelta(seconds=k),
                    session_id=newest,
                    run_id=run.id,
                    service="acquisition",
                    panel="acquisition" if k % 2 else "processing",
                    level="error" if k % 10 == 0 else "info",
                    logger="t",
                    text=f"line {k}",
                )
            )
        for _ in range(25):
            db.add(AuditEntry(username="op", action="start", outcome="ok", session_id=newest))
        await db.commit()
    return ids


async def _pages(client: httpx.AsyncClient, url: str) -> list[list[Any]]:
    """Every page, following ``Link: rel="next"``."""
    pages = []
    while url:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        url = r.links.get("next", {}).get("url", "")
    return pages


async def test_sessions_are_pages_newest_first_filtered_before_the_cut(api: Api) -> None:
    ids = await _seed(api)
    viewer = api.clients["viewer"]
    pages = await _pages(viewer, "/api/sessions?limit=25")
    assert [len(p) for p in pages] == [25, 25, 10]
    assert [s["id"] for p in pages for s in p] == [str(i) for i in reversed(ids)]
    ended = (await viewer.get("/api/sessions?state=ended&limit=2")).json()
    assert [s["name"] for s in ended] == ["s040", "s020"], "older matches are found"
    assert ended[0]["exposures"] == 7 and ended[0]["run"]["state"] == "ended"
    idle = await _pages(viewer, "/api/sessions?state=idle&microscope_id=m1&limit=10")
    names = [s["name"] for p in idle for s in p]
    assert len(names) == 27 and all(int(n[1:]) % 2 == 0 and int(n[1:]) % 20 for n in names)
    running = (await viewer.get("/api/sessions?state=running")).json()
    assert [s["id"] for s in running] == [str(ids[-1])] and running[0]["exposures"] == 30
    since = (T0 + timedelta(minutes=50)).isoformat()
    late = (await viewer.get("/api/sessions", params={"since": since})).json()
    assert len(late) == 10
    for bad in ({"since": "2025-01-01T00:00:00"}, {"before": str(uuid.uuid4())}):
        r = await viewer.get("/api/sessions", params=bad)
        assert r.status_code == 422 and next(iter(bad)) in r.text


async def test_a_page_of_sessions_costs_the_same_statements_for_5_rows_or_50(api: Api) -> None:
    await _seed(api)
    engine = api.sessions.kw["bind"].sync_engine
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        await api.clients["viewer"].get("/api/sessions?limit=5")
        few = len(counted)
        counted.clear()
        await api.clients["viewer"].get("/api/sessions?limit=50")
        many = len(counted)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert few == many <= 5, f"{few} statements for 5 sessions, {many} for 50"


async def test_exposures_runs_and_audit_are_pages_newest_first(api: Api) -> None:
    ids = await _seed(api)
    viewer, staff = api.clients["viewer"], api.clients["staff"]
    pages = await _pages(viewer, f"/api/sessions/{ids[-1]}/exposures?limit=12")
    times = [e["acquired_at"] for p in pages for e in p]
    assert [len(p) for p in pages] == [12, 12, 6] and times == sorted(times, reverse=True)
    other = (await viewer.get(f"/api/sessions/{ids[0]}/exposures")).json()
    assert other == []
    r = await viewer.get(f"/api/sessions/{ids[0]}/exposures?before={pages[0][0]['id']}")
    assert r.status_code == 422, "a cursor of another session"
    audit = await _pages(staff, f"/api/audit?session_id={ids[-1]}&limit=10")
    numbers = [a["id"] for p in audit for a in p]
    assert len(numbers) == 25 and numbers == sorted(numbers, reverse=True)
    runs = await _pages(viewer, f"/api/sessions/{ids[-1]}/runs?limit=1")
    assert [len(p) for p in runs] == [1]


async def test_the_plots_series_holds_the_newest_exposures_a_list_per_column(
    api: Api,
) -> None:
    ids = await _seed(api)
    viewer, sid = api.clients["viewer"], ids[-1]
    page = (await viewer.get(f"/api/sessions/{sid}/exposures?limit=12")).json()
    r = await viewer.get(f"/api/sessions/{sid}/exposures/series?limit=12")
    assert r.status_code == 200, r.text
    series = r.json()
    assert series["acquired_at"] == [e["acquired_at"] for e in page], "the same, newest first"
    assert series["status"] == ["acquired"] * 12 and series["more"] is True
    assert set(series) == {
        "acquired_at",
        "status",
        "defocus1_a",
        "defocus2_a",
        "ctf_fit_resolution_a",
        "ctf_low_confidence",
        "ice_nm",
        "more",
    }
    whole = (await viewer.get(f"/api/sessions/{sid}/exposures/series")).json()
    assert len(whole["acquired_at"]) == 30 and whole["more"] is False
    empty = (await viewer.get(f"/api/sessions/{ids[0]}/exposures/series")).json()
    assert empty["acquired_at"] == [] and empty["ice_nm"] == [] and empty["more"] is False
    assert (await viewer.get(f"/api/sessions/{uuid.uuid4()}/exposures/series")).status_code == 404
    bad = await viewer.get(f"/api/sessions/{sid}/exposures/series?limit=0")
    assert bad.status_code == 422 and "limit" in bad.text


async def test_logs_read_back_from_the_end_with_their_filters(api: Api) -> None:
    ids = await _seed(api)
    viewer, sid = api.clients["viewer"], ids[-1]
    back = await _pages(viewer, f"/api/sessions/{sid}/logs?tail=20")
    texts = [ln["text"] for p in back for ln in p]
    assert [len(p) for p in back] == [20, 20, 10]
    assert texts[:20] == [f"line {k}" for k in range(30, 50)], "a page reads in id order"
    assert sorted(texts, key=lambda t: int(t.split()[1])) == [f"line {k}" for k in range(50)]
    errors = (await viewer.get(f"/api/sessions/{sid}/logs?level=error&tail=3")).json()
    assert [ln["text"] for ln in errors] == ["line 20", "line 30", "line 40"]
    forward = await _pages(viewer, f"/api/sessions/{sid}/logs?panel=acquisition&limit=10")
    odd = [ln["text"] for p in forward for ln in p]
    assert odd == [f"line {k}" for k in range(1, 50, 2)]


async def test_the_text_log_streams_in_batches(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = await _seed(api)
    monkeypatch.setattr(log_routes, "TEXT_BATCH", 7)
    engine = api.sessions.kw["bind"].sync_engine
    statements: list[str] = []

    def count(*args: Any) -> None:
        if "FROM log_lines" in args[2]:
            statements.append(args[2])

    turns: list[int] = []
    drain = api.app.state.projector.drain

    async def turn() -> None:
        turns.append(len(statements))
        await drain()

    monkeypatch.setattr(api.app.state.projector, "drain", turn)
    event.listen(engine, "before_cursor_execute", count)
    chunks = []
    try:
        url = f"/api/sessions/{ids[-1]}/logs?format=text&panel=processing"
        async with api.clients["viewer"].stream("GET", url) as r:
            assert r.status_code == 200
            assert r.headers["content-disposition"].endswith('-processing.log"')
            async for chunk in r.aiter_bytes():
                chunks.append(chunk)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    lines = b"".join(chunks).decode().splitlines()
    assert [ln.rsplit(": ", 1)[1] for ln in lines] == [f"line {k}" for k in range(0, 50, 2)]
    assert len(statements) == 4, "25 lines, 7 per statement"
    assert turns == [0, 1, 2, 3], "each batch waits for the projection first"
