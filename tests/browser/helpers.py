"""Browser-test helpers: Debian Chromium via Playwright against servers on loopback.

Until the embedded stack exists these run the ui against the fake session-api of
``tests/unit/ui``, both on one MemoryBus in the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, Page
from unit.ui.fake_api import PASSWORDS, FakeApi, Sess

from proto.bus.memory import MemoryBus

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(
    os.environ.get("GRIDPILOT_SCREENSHOTS", Path(tempfile.gettempdir()) / "gridpilot-screenshots")
)
"""Where the fake-stack screenshot tests write (the docs' pictures come from the real stack:
``scripts/screenshots.py``)."""
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
LAPTOP = {"width": 1440, "height": 900}
WALL = {"width": 2560, "height": 1440}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[None]:
    """Run ``app`` on 127.0.0.1:``port`` in this event loop (streams cut at shutdown)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task


@dataclass
class FakeStack:
    url: str
    fake: FakeApi
    bus: MemoryBus
    session: Sess
    other: Sess


async def new_page(browser: Browser, size: dict[str, int] = LAPTOP) -> Page:
    context = await browser.new_context(viewport=size)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(10_000)
    return page


async def login(page: Page, base: str, who: str, next_path: str = "/") -> None:
    await page.goto(f"{base}/login?next={next_path}")
    await page.get_by_label("Username").fill(who)
    await page.get_by_label("Password").fill(PASSWORDS[who])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}{next_path}")


async def csrf(page: Page) -> dict[str, str]:
    """The header with the page's CSRF token, for a request made beside the page (as htmx
    sends it)."""
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token, "the page has no CSRF token"
    return {"X-CSRF-Token": token}


async def stream_open(page: Page) -> None:
    """Wait until the page's EventSource is connected (SSE trap: act only after that)."""
    await page.wait_for_function("document.documentElement.dataset.stream === 'open'")
