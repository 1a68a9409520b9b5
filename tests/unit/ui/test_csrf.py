"""Cross-site request forgery (issue 14, item 1): the origin checks and the CSRF token.

A browser's cross-site attempt is shown end to end in ``tests/browser/test_cross_site.py``;
these tests pin each check with hand-made headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from unit.ui.conftest import World, csrf_of, login
from unit.ui.fake_api import PASSWORDS

from ui.app import create_app
from ui.auth import User
from ui.csrf import normal_origin, token_for
from ui.settings import UiSettings

HTMX = {"HX-Request": "true"}


def started(world: World) -> int:
    return len(world.fake.sessions[world.session.id].runs)


async def test_a_control_without_the_token_is_refused_and_audited(
    ui: httpx.AsyncClient, world: World
) -> None:
    await login(ui, "operator")
    del ui.headers["X-CSRF-Token"]
    r = await ui.post(f"/sessions/{world.session.id}/start", headers=HTMX)
    assert r.status_code == 403 and "not sent by a Gridpilot page" in r.text
    assert "no CSRF token" in r.text and r.headers["HX-Retarget"] == "#messages"
    assert started(world) == 0
    [(who, report)] = world.fake.refusals
    assert who == "operator" and report.action == "start"
    assert report.request == f"POST /sessions/{world.session.id}/start"
    assert report.session_id == world.session.id and "no CSRF token" in report.reason


async def test_a_wrong_token_is_refused(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    other = token_for(User("staff", "staff", "tok-staff"), "test-secret")
    r = await ui.post(
        f"/sessions/{world.session.id}/start", headers={**HTMX, "X-CSRF-Token": other}
    )
    assert r.status_code == 403 and "another login" in r.text
    r = await ui.post(
        f"/sessions/{world.session.id}/start",
        data={"csrf_token": "forged"},
        headers={"X-CSRF-Token": ""},
    )
    assert r.status_code == 403
    assert started(world) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://ui.test:3000"},  # another port of the same host: same-site
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://ui.test"},
    ],
)
async def test_another_origin_is_refused_even_with_the_token(
    ui: httpx.AsyncClient, world: World, headers: dict[str, str]
) -> None:
    await login(ui, "staff")
    r = await ui.post(f"/sessions/{world.session.id}/start", headers={**HTMX, **headers})
    assert r.status_code == 403 and "not sent by a Gridpilot page" in r.text
    assert started(world) == 0 and len(world.fake.refusals) == 1


async def test_the_own_origin_passes(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    own = {"Origin": "http://ui.test", "Sec-Fetch-Site": "same-origin"}
    r = await ui.post(f"/sessions/{world.session.id}/start", headers={**HTMX, **own})
    assert r.status_code == 200, r.text
    assert started(world) == 1 and world.fake.refusals == []


async def test_a_plain_form_sends_the_token_as_a_field(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    token = ui.headers.pop("X-CSRF-Token")
    r = await ui.post(f"/sessions/{world.session.id}/start", data={"csrf_token": token})
    assert r.status_code == 200, r.text
    assert started(world) == 1


async def test_logout_cannot_be_forged(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "viewer")
    token = ui.headers.pop("X-CSRF-Token")
    page = (await ui.get("/")).text
    assert f'<input type="hidden" name="csrf_token" value="{token}">' in page
    assert (await ui.post("/logout")).status_code == 403
    r = await ui.post("/logout", data={"csrf_token": token}, headers={"Origin": "http://x.test"})
    assert r.status_code == 403
    assert (await ui.get("/")).status_code == 200, "still logged in"
    r = await ui.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303 and (await ui.get("/")).status_code == 303


async def test_login_from_another_origin_is_refused(ui: httpx.AsyncClient) -> None:
    form = {"username": "operator", "password": PASSWORDS["operator"]}
    r = await ui.post("/login", data=form, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    r = await ui.post("/login", data=form, headers={"Origin": "http://ui.test"})
    assert r.status_code == 303


async def test_the_token_is_per_login_and_only_on_pages_of_a_login(
    ui: httpx.AsyncClient,
) -> None:
    assert 'name="csrf-token"' not in (await ui.get("/login")).text
    await login(ui, "operator")
    mine = ui.headers["X-CSRF-Token"]
    assert mine == token_for(User("operator", "operator", "tok-operator"), "test-secret")
    await login(ui, "staff")
    assert csrf_of((await ui.get("/")).text) != mine


async def test_trusted_origins(world: World) -> None:
    settings = UiSettings(
        session_api_url="http://api.test",
        secret_key="test-secret",
        trusted_origins=["https://Gridpilot.Example:443"],
    )
    app = create_app(settings, world.bus, api_transport=httpx.ASGITransport(world.fake.app))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui.test") as client:
            await login(client, "operator")
            r = await client.post(
                f"/sessions/{world.session.id}/start",
                headers={**HTMX, "Origin": "https://gridpilot.example"},
            )
            assert r.status_code == 200, r.text


def test_origins_are_compared_normalised() -> None:
    assert normal_origin("HTTPS://Host.Example:443/x") == "https://host.example"
    assert normal_origin("http://host:8000") == "http://host:8000"
    assert normal_origin("http://host:80") == "http://host"
    assert normal_origin("not a url") is None and normal_origin("http://[::1") is None


async def test_a_large_body_is_refused_before_anything_else(
    ui: httpx.AsyncClient, world: World
) -> None:
    r = await ui.post("/login", content=b"x" * 70_000)
    assert r.status_code == 413 and "limit is 65536 bytes" in r.text
    world.fake.calls.clear()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read up to the limit
        for _ in range(100):
            yield b"y" * 1000

    r = await ui.post(f"/sessions/{world.session.id}/start", content=chunks())
    assert r.status_code == 413 and world.fake.calls == []
