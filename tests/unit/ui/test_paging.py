"""The sessions list and the session browser read session-api a page at a time, newest first,
and say what they show. Run against the fake session-api and against the real one (the fake
is proven on what the ui relies on: order, pages, the ``Link`` cursor, totals)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from unit.ui.conftest import login
from unit.ui.fake_api import PASSWORDS, T0, FakeApi

from proto.api import ExposureView
from proto.bus.memory import MemoryBus
from session_api.db.models import Exposure, Grid, Microscope, Run, Session
from support.api_app import api_app
from ui.app import create_app
from ui.routes import browse
from ui.settings import UiSettings

SESSIONS = 60
EXPOSURES = 250


@dataclass
class Site:
    ui: httpx.AsyncClient
    busy: uuid.UUID
    """The newest session: its run took ``EXPOSURES`` exposures, a minute apart."""


def _exposure_times() -> list[tuple[uuid.UUID, object]]:
    return [(uuid.uuid4(), T0 + timedelta(minutes=k)) for k in range(EXPOSURES)]


async def _fake() -> tuple[FakeApi, uuid.UUID]:
    fake = FakeApi()
    fake.add_scope("krios-1", "Krios 1")
    for i in range(SESSIONS):
        s = fake.add_session(f"s{i:03d}", "krios-1")
    s.runs.append(
        {"id": uuid.uuid4(), "number": 1, "state": "running", "exit_reason": None,
         "detail": None, "host": "pc", "pid": 1, "started_at": T0, "ended_at": None,
         "heartbeat_at": None, "requested_by": "op", "pause_between_grids": False,
         "stop_requested": False, "decision": None, "current_grid": "g1", "exposures": EXPOSURES}
    )  # fmt: skip
    hole = next(t for t in s.targets.values() if t["kind"] == "hole")
    s.exposures = [
        ExposureView(id=eid, run_id=s.runs[0]["id"], grid_id=s.grids[0].id, hole_id=hole["id"],
                     acquired_at=at, status="acquired")  # type: ignore[arg-type]
        for eid, at in _exposure_times()
    ]  # fmt: skip
    return fake, s.id


async def _real(api_sessions: object) -> uuid.UUID:
    async with api_sessions() as db:  # type: ignore[operator]
        db.add(Microscope(id="krios-1", name="Krios 1"))
        await db.flush()
        for i in range(SESSIONS):
            s = Session(
                id=uuid.uuid4(),
                name=f"s{i:03d}",
                microscope_id="krios-1",
                created_by="operator",
                created_at=T0 + timedelta(seconds=i),
            )
            db.add(s)
            await db.flush()
            db.add_all(Grid(session_id=s.id, name=f"grid-{k}", position=k) for k in (1, 2))
        run = Run(
            id=uuid.uuid4(),
            session_id=s.id,
            microscope_id="krios-1",
            number=1,
            state="running",
            requested_by="op",
            exposures=EXPOSURES,
            started_at=T0,
        )
        db.add(run)
        s.latest_run_id = s.live_run_id = run.id
        for eid, at in _exposure_times():
            db.add(
                Exposure(
                    id=eid,
                    session_id=s.id,
                    run_id=run.id,
                    grid_id=uuid.uuid4(),
                    hole_id=uuid.uuid4(),
                    path="/data/m.mrc",
                    acquired_at=at,
                )
            )
        await db.commit()
        return s.id


@pytest.fixture(params=["fake", "real"])
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    async with MemoryBus(namespace="paging") as bus:
        if request.param == "fake":
            fake, busy = await _fake()
            backend = fake.app
            async with _ui(bus, backend) as ui:
                yield Site(ui, busy)
            return
        url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
        async with api_app(url, tmp_path, passwords=PASSWORDS) as api:
            busy = await _real(api.sessions)
            async with _ui(bus, api.app) as ui:
                yield Site(ui, busy)


def _ui(bus: MemoryBus, backend: object) -> httpx.AsyncClient:
    settings = UiSettings(session_api_url="http://api.test", secret_key="test-secret")
    app = create_app(settings, bus, api_transport=httpx.ASGITransport(backend))  # type: ignore[arg-type]

    class Client(httpx.AsyncClient):
        async def __aenter__(self) -> Client:
            self._life = app.router.lifespan_context(app)
            await self._life.__aenter__()
            await super().__aenter__()
            return self

        async def __aexit__(self, *exc: object) -> None:
            await super().__aexit__(*exc)  # type: ignore[arg-type]
            await self._life.__aexit__(None, None, None)

    return Client(transport=httpx.ASGITransport(app), base_url="http://ui.test")


def _names(page: str) -> list[str]:
    return re.findall(r'<td><a href="/sessions/[^"]+">(s\d{3})</a></td>', page)


def _older(page: str) -> str:
    found = re.search(r'<a href="([^"]+)" rel="next">Older', page)
    assert found, "no link to an older page"
    return found.group(1).replace("&amp;", "&")


def _times(page: str) -> list[str]:
    return re.findall(r'<tr class="es-acquired">\s*<td>([^<]+)</td>', page)


async def test_the_sessions_list_pages_back_from_the_newest(site: Site) -> None:
    await login(site.ui, "viewer")
    first = (await site.ui.get("/sessions")).text
    assert _names(first) == [f"s{i:03d}" for i in range(59, 9, -1)]
    assert "50 sessions, newest first" in first
    second = (await site.ui.get(_older(first))).text
    assert _names(second) == [f"s{i:03d}" for i in range(9, -1, -1)]
    assert 'rel="next"' not in second and ">Newest sessions</a>" in second
    running = (await site.ui.get("/sessions?state=running")).text
    assert _names(running) == ["s059"] and 'rel="next"' not in running
    idle = (await site.ui.get("/sessions?state=idle")).text
    assert _names(idle)[0] == "s058" and 'rel="next"' in idle, "filtered before the cut"


async def test_the_browser_shows_the_newest_exposures_and_pages_back(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browse, "PLOT_SAMPLE", 120)
    await login(site.ui, "viewer")
    page = (await site.ui.get(f"/sessions/{site.busy}/browse")).text
    newest = (T0 + timedelta(minutes=EXPOSURES - 1)).strftime("%H:%M:%S")
    times = _times(page)
    assert len(times) == 100 and times[0] == newest, "the newest first"
    assert "The newest 100 of 250, newest first." in page
    since = (T0 + timedelta(minutes=EXPOSURES - 120)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"The newest 120 of 250 exposures, taken since {since} UTC." in page
    second = (await site.ui.get(_older(page))).text
    assert _times(second)[0] == (T0 + timedelta(minutes=149)).strftime("%H:%M:%S")
    assert "Older exposures, newest first: 100 taken" in second
    third = (await site.ui.get(_older(second))).text
    assert len(_times(third)) == 50 and 'rel="next"' not in third
    assert _times(third)[-1] == T0.strftime("%H:%M:%S")
    assert ">Newest exposures</a>" in third
