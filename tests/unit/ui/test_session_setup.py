"""The *New session*, *Edit* and *Copy* pages, *Archive* and the *Skip* buttons, against the
real session-api in this process (its checks, its 422 field lists, its roles)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from unit.ui.conftest import csrf_of

from proto.bus.memory import MemoryBus
from proto.lease.memory import MemoryLeases
from session_api.app import create_app as create_api
from session_api.auth import add_user
from session_api.db.models import Microscope, Run, Session, Target
from session_api.settings import ApiSettings
from ui.app import create_app as create_ui
from ui.settings import UiSettings

PASSWORD = "correct horse battery"
HTMX = {"HX-Request": "true"}


@dataclass
class Stack:
    api: FastAPI
    clients: dict[str, httpx.AsyncClient]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with MemoryBus(namespace=f"t{uuid.uuid4().hex[:8]}") as bus:
        api = create_api(
            ApiSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db'}"),
            bus=bus,
            leases=MemoryLeases(),
        )
        async with api.router.lifespan_context(api):
            async with api.state.sessionmaker() as db:
                for role in ("viewer", "operator"):
                    await add_user(db, role, role, PASSWORD)  # type: ignore[arg-type]
                db.add(Microscope(id="krios-1", name="Krios 1"))
                db.add(Microscope(id="glacios", name="Glacios"))
                await db.commit()
            ui = create_ui(
                UiSettings(session_api_url="http://api.test", secret_key="k"),
                bus,
                api_transport=httpx.ASGITransport(api),
            )
            async with ui.router.lifespan_context(ui):
                clients = {}
                for role in ("viewer", "operator"):
                    client = httpx.AsyncClient(
                        transport=httpx.ASGITransport(ui), base_url="http://ui.test"
                    )
                    r = await client.post("/login", data={"username": role, "password": PASSWORD})
                    assert r.status_code == 303, r.text
                    client.headers["X-CSRF-Token"] = csrf_of((await client.get("/")).text)
                    clients[role] = client
                yield Stack(api, clients)
                for client in clients.values():
                    await client.aclose()


def form(**fields: str) -> dict[str, str]:
    base = {
        "name": "apo 12",
        "microscope_id": "krios-1",
        "grid_2": "apo-a",
        "grid_5": "apo-b",
        "squares_per_grid": "2",
        "holes_per_square": "",
        "ordering": "thinnest_ice",
        "exposures_per_hole": "3",
        "atlas_only": "1",
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def error(html: str, key: str) -> str:
    found = re.search(rf'<span class="field-error" id="err-{key}">([^<]*)</span>', html)
    assert found, f"no error beside {key}"
    return found.group(1)


async def test_new_session_page_shows_scopes_cassette_and_plan(stack: Stack) -> None:
    r = await stack.clients["operator"].get("/sessions/new")
    assert r.status_code == 200, r.text
    html = r.text
    assert "<title>New session · Gridpilot</title>" in html
    assert 'name="microscope_id" value="krios-1"' in html and "Krios 1" in html and "free" in html
    for p in range(1, 13):
        assert f'<label for="f-grid-{p}">Position {p}</label>' in html
    for label in ("Squares per grid", "Holes per square", "Exposures per hole", "Order"):
        assert f">{label}</label>" in html
    assert 'name="atlas_only"' in html and 'name="pause_between_grids"' in html
    sessions = await stack.clients["operator"].get("/sessions")
    assert 'id="new-session" href="/sessions/new"' in sessions.text


async def test_create_goes_to_the_new_session(stack: Stack) -> None:
    op = stack.clients["operator"]
    r = await op.post("/sessions/new", data=form(), headers=HTMX)
    assert r.status_code == 200 and r.headers["HX-Redirect"].startswith("/sessions/")
    page = await op.get(r.headers["HX-Redirect"])
    assert '<h1 id="h-session">apo 12</h1>' in page.text
    setup = page.text[page.text.index('id="session-setup"') :]
    assert "atlas only · holes per square: default · thinnest ice first · 3 exposures" in setup
    assert '<b class="num">2</b> apo-a' in setup and '<b class="num">5</b> apo-b' in setup
    # without JavaScript: a plain POST with the form's hidden CSRF field
    page = await op.get("/sessions/new")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    header = op.headers.pop("X-CSRF-Token")
    r = await op.post("/sessions/new", data={**form(name="no js"), "csrf_token": token[1]})
    assert r.status_code == 303 and r.headers["location"].startswith("/sessions/")
    r = await op.post("/sessions/new", data=form(name="no token"))
    assert r.status_code == 403 and "CSRF" in r.text
    op.headers["X-CSRF-Token"] = header


async def test_refusals_appear_beside_their_fields(stack: Stack) -> None:
    op = stack.clients["operator"]
    bad = form(
        name="bad name!",
        microscope_id="",
        grid_5="apo-a",
        grid_7="x" * 70,
        squares_per_grid="-1",
        exposures_per_hole="lots",
    )
    r = await op.post("/sessions/new", data=bad, headers=HTMX)
    assert r.status_code == 200 and "HX-Redirect" not in r.headers
    html = r.text
    assert html.lstrip().startswith("<form") and "<html" not in html, "the form partial alone"
    assert "Use letters, digits" in error(html, "name")
    assert error(html, "microscope_id") == "Required."
    assert error(html, "grid_7") == "At most 64 characters."
    assert error(html, "squares_per_grid") == "At least 0."
    assert error(html, "exposures_per_hole") == "A whole number."
    assert 'id="f-grid-7" name="grid_7" value="' + "x" * 70 in html, "what was typed stays"
    assert 'aria-invalid="true" aria-describedby="err-name"' in html
    # session-api's own checks come once pydantic's pass
    r = await op.post("/sessions/new", data=form(grid_5="apo-a"), headers=HTMX)
    assert "used twice" in error(r.text, "grid_5")
    r = await op.post("/sessions/new", data=form(grid_2="", grid_5=""), headers=HTMX)
    assert error(r.text, "grids") == "Name at least one grid."


async def test_edit_then_grids_locked_after_a_start_copy_and_archive(stack: Stack) -> None:
    op = stack.clients["operator"]
    r = await op.post("/sessions/new", data=form(), headers=HTMX)
    sid = r.headers["HX-Redirect"].rsplit("/", 1)[1]
    edit = await op.get(f"/sessions/{sid}/edit")
    assert 'id="f-grid-5" name="grid_5" value="apo-b"' in edit.text
    assert 'value="thinnest_ice" selected' in edit.text
    r = await op.post(
        f"/sessions/{sid}/edit",
        data=form(name="apo 13", grid_1="apo-0", atlas_only="", squares_per_grid="4"),
        headers=HTMX,
    )
    assert r.headers.get("HX-Redirect") == f"/sessions/{sid}", r.text
    page = await op.get(f"/sessions/{sid}")
    assert "apo 13" in page.text and '<b class="num">1</b> apo-0' in page.text
    assert "4 squares per grid" in page.text

    started = await op.post(f"/sessions/{sid}/start", headers=HTMX)
    assert started.status_code == 200, started.text
    edit = await op.get(f"/sessions/{sid}/edit")
    assert "its grids hold data and stay as they are" in edit.text
    assert (
        'name="grid_1" value="apo-0" placeholder="" maxlength="64" autocomplete="off" disabled'
        in (edit.text)
    )
    r = await op.post(f"/sessions/{sid}/edit", data=form(name="apo 14"), headers=HTMX)
    assert "stop it before changing the session" in r.text, "a live run: refused, said"

    copy = await op.get(f"/sessions/{sid}/copy")
    assert 'value="apo 13 copy"' in copy.text and 'placeholder="apo-b"' in copy.text
    r = await op.post(
        f"/sessions/{sid}/copy",
        data={"name": "today", "microscope_id": "glacios", "grid_3": "new-1"},
        headers=HTMX,
    )
    copied = r.headers["HX-Redirect"]
    page = await op.get(copied)
    assert "Glacios" in page.text and '<b class="num">3</b> new-1' in page.text
    assert "4 squares per grid" in page.text, "the plan comes along"

    await op.post(f"/sessions/{sid}/stop", headers=HTMX)
    async with stack.api.state.sessionmaker() as db:  # no acquisition here: end it by hand
        await db.execute(update(Run).values(state="ended", exit_reason="stopped"))
        await db.execute(update(Session).values(live_run_id=None))
        await db.commit()
    r = await op.post(f"/sessions/{sid}/archive", headers=HTMX)
    assert r.status_code == 200 and 'id="archived-badge"' in r.text and "Unarchive" in r.text
    listed = await op.get("/sessions")
    assert f'href="/sessions/{sid}"' not in listed.text
    archived = await op.get("/sessions", params={"archived": "only"})
    assert f'href="/sessions/{sid}"' in archived.text and "badge archived" in archived.text
    page = await op.get(f"/sessions/{sid}")
    assert 'title="Archived: unarchive the session to start it"' in page.text
    refused = await op.post(f"/sessions/{sid}/start", headers=HTMX)
    assert refused.headers["Gridpilot-Status"] == "409" and "unarchive it to start" in refused.text


async def test_viewers_read_the_form_but_cannot_create(stack: Stack) -> None:
    viewer = stack.clients["viewer"]
    r = await viewer.get("/sessions/new")
    assert r.status_code == 200 and "an operator creates and changes sessions" in r.text
    assert 'id="session-submit" disabled' in r.text
    assert 'id="new-session"' not in (await viewer.get("/sessions")).text
    r = await viewer.post("/sessions/new", data=form(), headers=HTMX)
    assert r.headers["Gridpilot-Status"] == "403" and r.headers["HX-Retarget"] == "#messages"


async def test_skip_buttons_on_the_target_being_acquired(stack: Stack) -> None:
    op, viewer = stack.clients["operator"], stack.clients["viewer"]
    r = await op.post("/sessions/new", data=form(atlas_only=""), headers=HTMX)
    sid = r.headers["HX-Redirect"].rsplit("/", 1)[1]
    await op.post(f"/sessions/{sid}/start", headers=HTMX)
    hole = uuid.uuid4()
    async with stack.api.state.sessionmaker() as db:  # what a run reports, projected
        db.add(
            Target(
                id=hole,
                kind="hole",
                session_id=uuid.UUID(sid),
                grid_id=uuid.uuid4(),
                parent_id=uuid.uuid4(),
                y=1,
                x=1,
                size_px=5,
                cls="good",
                score=0.9,
                status="acquiring",
            )
        )
        item = {
            "target_id": str(hole),
            "kind": "hole",
            "grid_name": "apo-a",
            "label": f"hole {hole.hex[:6]} · good",
            "status": "acquiring",
        }
        await db.execute(
            update(Run).values(state="running", queue={"items": [item], "counts": {"acquiring": 1}})
        )
        await db.commit()
    page = await op.get(f"/sessions/{sid}")
    assert 'id="skip-target"' in page.text and ">Skip rest of this square</button>" in page.text
    assert 'id="skip-target"' not in (await viewer.get(f"/sessions/{sid}")).text
    r = await op.post(
        f"/sessions/{sid}/skip-target",
        data={"target_id": str(hole), "label": f"hole {hole.hex[:6]}"},
        headers=HTMX,
    )
    assert r.status_code == 200, r.text
    assert f"Skip of hole {hole.hex[:6]} sent: the run skips it at its next safe point" in r.text
    r = await viewer.post(f"/sessions/{sid}/skip-square", data={}, headers=HTMX)
    assert r.headers["Gridpilot-Status"] == "403" and r.headers["HX-Retarget"] == "#messages"


async def test_every_set_up_and_skip_route_refuses_viewers_and_missing_tokens(
    stack: Stack,
) -> None:
    """The ui's side of the role matrix: each new state-changing page route answers a viewer
    with session-api's 403 in #messages, and anyone without the CSRF token with 403."""
    op, viewer = stack.clients["operator"], stack.clients["viewer"]
    r = await op.post("/sessions/new", data=form(), headers=HTMX)
    sid = r.headers["HX-Redirect"].rsplit("/", 1)[1]
    routes = {
        "/sessions/new": form(name="by viewer"),
        f"/sessions/{sid}/edit": form(name="by viewer"),
        f"/sessions/{sid}/copy": {"name": "by viewer", "grid_1": "v"},
        f"/sessions/{sid}/archive": {},
        f"/sessions/{sid}/unarchive": {},
        f"/sessions/{sid}/skip-target": {"target_id": str(uuid.uuid4())},
        f"/sessions/{sid}/skip-square": {"target_id": str(uuid.uuid4())},
    }
    for path, data in routes.items():
        r = await viewer.post(path, data=data, headers=HTMX)
        assert r.headers.get("Gridpilot-Status") == "403", (path, r.status_code, r.text)
        assert r.headers["HX-Retarget"] == "#messages" and "operator" in r.text, path
        token = op.headers.pop("X-CSRF-Token")
        try:
            r = await op.post(path, data=data, headers=HTMX)
        finally:
            op.headers["X-CSRF-Token"] = token
        assert r.status_code == 403 and "CSRF" in r.text, (path, r.status_code)
    page = await op.get(f"/sessions/{sid}")
    assert "by viewer" not in page.text and 'id="archived-badge"' not in page.text
    assert "by viewer" not in (await op.get("/sessions")).text, "nothing created or copied"
