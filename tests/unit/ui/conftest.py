"""Fixtures of the ui's unit tests: a MemoryBus, a fake session-api, the ui app and a client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from unit.ui.fake_api import PASSWORDS, FakeApi, Sess

from proto.bus.memory import MemoryBus
from ui.app import create_app
from ui.settings import UiSettings


@dataclass
class World:
    fake: FakeApi
    session: Sess
    other: Sess
    bus: MemoryBus


@pytest.fixture
async def membus() -> AsyncIterator[MemoryBus]:
    async with MemoryBus(namespace="uitest") as bus:
        yield bus


@pytest.fixture
def world(membus: MemoryBus) -> World:
    fake = FakeApi(membus)
    fake.add_scope("krios-1", "Krios 1")
    fake.add_scope("glacios", "Glacios")
    first = fake.add_session("apoferritin 2025-03", "krios-1")
    second = fake.add_session("second on krios", "krios-1")
    return World(fake, first, second, membus)


@pytest.fixture
async def ui(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The ui app (lifespan entered) behind an httpx client that keeps cookies."""
    settings = UiSettings(session_api_url="http://api.test", secret_key="test-secret")
    app = create_app(settings, world.bus, api_transport=httpx.ASGITransport(world.fake.app))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def login(client: httpx.AsyncClient, who: str) -> None:
    """Log in as ``who``; the client then sends the login's CSRF token, as htmx does."""
    r = await client.post("/login", data={"username": who, "password": PASSWORDS[who]})
    assert r.status_code == 303, r.text
    client.headers["X-CSRF-Token"] = csrf_of((await client.get("/")).text)


def csrf_of(page: str) -> str:
    """The CSRF token a page carries in its ``<meta name="csrf-token">``."""
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


async def start_run(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    """Log in as operator and start the world's session; the fake's record of the run."""
    await login(client, "operator")
    r = await client.post(f"/sessions/{world.session.id}/start", headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    run: dict[str, Any] = world.fake.sessions[world.session.id].runs[-1]
    return run
