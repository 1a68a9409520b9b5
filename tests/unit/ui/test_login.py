"""Login, logout, the cookie and the redirects to the login page."""

from __future__ import annotations

import httpx
from unit.ui.conftest import World, login

from ui.auth import COOKIE, User, decode_cookie, encode_cookie, safe_next


async def test_pages_redirect_to_login_with_next(ui: httpx.AsyncClient, world: World) -> None:
    r = await ui.get(f"/sessions/{world.session.id}")
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next=/sessions/{world.session.id}"


async def test_htmx_requests_get_hx_redirect(ui: httpx.AsyncClient, world: World) -> None:
    page = f"http://ui.test/sessions/{world.session.id}"
    headers = {"HX-Request": "true", "HX-Current-URL": page}
    r = await ui.post(f"/sessions/{world.session.id}/start", headers=headers)
    assert r.status_code == 401
    assert r.headers["HX-Redirect"] == f"/login?next=/sessions/{world.session.id}"


async def test_login_sets_cookie_and_goes_next(ui: httpx.AsyncClient) -> None:
    r = await ui.post(
        "/login", data={"username": "operator", "password": "operator-pw", "next": "/sessions"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/sessions"
    set_cookie = r.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "samesite=lax" in set_cookie.lower()
    page = await ui.get("/")
    assert page.status_code == 200
    assert "operator" in page.text and 'class="role role-operator"' in page.text


async def test_wrong_password_shows_error(ui: httpx.AsyncClient) -> None:
    r = await ui.post("/login", data={"username": "operator", "password": "nope"})
    assert r.status_code == 401
    assert "Wrong username or password." in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")


async def test_empty_form_is_refused_without_calling_api(ui: httpx.AsyncClient) -> None:
    r = await ui.post("/login", data={"username": "", "password": ""})
    assert r.status_code == 401 and "Enter your username and password." in r.text


async def test_open_redirects_are_refused(ui: httpx.AsyncClient) -> None:
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil"):
        r = await ui.post(
            "/login", data={"username": "viewer", "password": "viewer-pw", "next": bad}
        )
        assert r.headers["location"] == "/"


async def test_logout_clears_cookie(ui: httpx.AsyncClient) -> None:
    await login(ui, "viewer")
    r = await ui.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert (await ui.get("/")).status_code == 303


async def test_forged_cookie_is_ignored(ui: httpx.AsyncClient) -> None:
    forged = encode_cookie(User("mallory", "staff", "tok-staff"), "another-key")
    ui.cookies.set(COOKIE, forged)
    assert (await ui.get("/")).status_code == 303


async def test_expired_token_goes_to_login(ui: httpx.AsyncClient) -> None:
    ui.cookies.set(COOKIE, encode_cookie(User("operator", "operator", "tok-gone"), "test-secret"))
    r = await ui.get("/sessions")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_cookie_round_trip_and_tampering() -> None:
    user = User("zoë ☃", "staff", "abc.def")
    value = encode_cookie(user, "k")
    assert decode_cookie(value, "k") == user
    assert decode_cookie(value, "other") is None
    assert decode_cookie("garbage", "k") is None
    body, _, sig = value.partition(".")
    assert decode_cookie(body[:-2] + "AA." + sig, "k") is None


def test_safe_next() -> None:
    assert safe_next("/sessions/1?x=2") == "/sessions/1?x=2"
    assert safe_next(None) == "/" and safe_next("http://x") == "/" and safe_next("//x") == "/"
