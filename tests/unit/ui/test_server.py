"""Shutting the ui down ends its open streams at once: they never end by themselves, and
plain uvicorn waited out its graceful timeout, then logged an error while cancelling them."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import pytest
import uvicorn
from unit.ui.conftest import World
from unit.ui.fake_api import PASSWORDS

from ui.app import create_app
from ui.server import Server
from ui.settings import UiSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_shutting_down_ends_open_streams_at_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    settings = UiSettings(session_api_url="http://api.test", secret_key="test-secret")
    app = create_app(settings, world.bus, api_transport=httpx.ASGITransport(world.fake.app))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=10
    )
    server = Server(config, app)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)  # uvicorn offers no event for "started"
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
        r = await client.post(
            "/login", data={"username": "viewer", "password": PASSWORDS["viewer"]}
        )
        assert r.status_code == 303
        async with client.stream("GET", f"/sessions/{world.session.id}/stream") as stream:
            chunks = stream.aiter_bytes()
            assert b"retry:" in await anext(chunks)  # joined its page's hub
            server.should_exit = True
            async with asyncio.timeout(5):
                rest = [chunk async for chunk in chunks]  # ends, rather than being cut
    assert isinstance(rest, list)
    await asyncio.wait_for(task, 10)
    assert not [r for r in caplog.records if "graceful shutdown exceeded" in r.getMessage()]
