"""Fixtures of the browser tests (helpers in ``browser.helpers``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from browser.helpers import ARGS, CHROMIUM, FakeStack, free_port, serve
from playwright.async_api import Browser, async_playwright
from unit.ui.fake_api import FakeApi, volume

from proto.bus.memory import MemoryBus
from ui.app import create_app
from ui.settings import UiSettings


@pytest.fixture
async def fake_stack() -> AsyncIterator[FakeStack]:
    async with MemoryBus(namespace="browser") as bus:
        fake = FakeApi(bus)
        fake.add_scope(
            "krios-1", "Krios 1", [volume("data", 0.42), volume("scratch", 0.11, hours_left=6.5)]
        )
        fake.add_scope("glacios", "Glacios", [volume("data", 0.8, hours_left=None)])
        first = fake.add_session("apoferritin 2025-03", "krios-1", grids=3, squares=9)
        other = fake.add_session("β-galactosidase", "krios-1", grids=2)
        fake.add_exposures(first, 60)
        fake.auto_end_on_stop = 0.3
        api_port, ui_port = free_port(), free_port()
        ui = create_app(
            UiSettings(session_api_url=f"http://127.0.0.1:{api_port}", secret_key="browser"),
            bus,
        )
        async with serve(fake.app, api_port), serve(ui, ui_port):
            yield FakeStack(f"http://127.0.0.1:{ui_port}", fake, bus, first, other)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            await b.close()
