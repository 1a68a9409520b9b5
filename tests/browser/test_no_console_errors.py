"""Every page of the real embedded stack loads in Chromium without a console error.

A crawl from the dashboard, as staff (who sees every page), following the links each page
offers: a page added later is covered as soon as a page links to it. A run has started and
processed an exposure first, so the pages show data (plots, thumbnails, log lines, runs)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browser.helpers import free_port, new_page, stream_open
from playwright.async_api import Browser, Page

from proto import messages as m
from proto.topology import EVENTS, transient_queue

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

MAX_PAGES = 40
PER_KIND = 2
"""Pages visited per kind of path (ids replaced): two sessions' pages, not every session's."""
SKIP = re.compile(r"^/(logout|static/|images/)|\.txt$|\.png$")
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Any]:
    from acquisition.settings import AcquisitionSettings
    from gridpilot.embedded import embedded_stack

    acq = AcquisitionSettings(squares_per_grid=1, holes_per_square=2)
    async with embedded_stack(
        ui_port=free_port(),
        api_port=free_port(),
        data_root=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}",
        acquisition=acq,
    ) as s:
        yield s


async def a_run_with_an_exposure(stack: Any) -> None:
    """Two sessions, one of them with a run that has a processed exposure."""
    processed = asyncio.Event()

    async def seen(message: m.Message) -> None:
        if isinstance(message, m.ExposureProcessed):
            processed.set()

    spec = transient_queue("test", EVENTS, (m.ExposureProcessed.routing_key,))
    subscription = await stack.bus.subscribe(spec, m.Message, seen)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
        r = await api.post(
            "/api/auth/token",
            json={"username": "operator", "password": stack.passwords["operator"]},
        )
        api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        scopes = (await api.get("/api/microscopes")).json()
        sids = []
        for name, grids in (("crawled", 2), ("never started", 1)):
            body = {
                "name": name,
                "microscope_id": scopes[0]["id"],
                "grids": [f"grid {i + 1}" for i in range(grids)],
            }
            sids.append((await api.post("/api/sessions", json=body)).json()["id"])
        assert (await api.post(f"/api/sessions/{sids[0]}/start")).status_code == 202
        async with asyncio.timeout(120):
            await processed.wait()
    await subscription.close()


def kind(path: str) -> str:
    return ID.sub("{id}", urlsplit(path).path)


async def links(page: Page, base: str) -> list[str]:
    hrefs: list[str] = await page.eval_on_selector_all(
        "a[href]:not([download])", "els => els.map(e => e.href)"
    )
    out = []
    for href in hrefs:
        url = urlsplit(href)
        if f"{url.scheme}://{url.netloc}" != base or SKIP.search(url.path):
            continue
        out.append(url.path + (f"?{url.query}" if url.query else ""))
    return out


async def settled(page: Page) -> None:
    """Loaded: scripts run, images decoded, and a live page's stream open."""
    await page.wait_for_load_state("load")
    if await page.locator("[sse-connect]").count():
        await stream_open(page)
    await page.wait_for_function("Array.from(document.images).every((i) => i.complete)")


async def test_every_page_loads_without_a_console_error(stack: Any, browser: Browser) -> None:
    await a_run_with_an_exposure(stack)
    page = await new_page(browser)
    problems: list[str] = []
    where = {"path": "/login"}
    page.on(
        "console",
        lambda msg: (
            problems.append(f"{where['path']}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(f"{where['path']}: {exc}"))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{where['path']}: {r.status} {r.url}")
            if r.status >= 400 and r.url.startswith(stack.ui_url)
            else None
        ),
    )
    await page.goto(f"{stack.ui_url}/login")
    await page.get_by_label("Username").fill("staff")
    await page.get_by_label("Password").fill(stack.passwords["staff"])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{stack.ui_url}/")
    queue, seen, kinds = ["/"], set[str](), dict[str, int]()
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen or kinds.get(kind(path), 0) >= PER_KIND:
            continue
        seen.add(path)
        kinds[kind(path)] = kinds.get(kind(path), 0) + 1
        where["path"] = path
        await page.goto(f"{stack.ui_url}{path}")
        await settled(page)
        queue += [p for p in await links(page, stack.ui_url) if p not in seen]
    visited = set(kinds)
    for expected in ("/", "/sessions", "/sessions/{id}", "/sessions/{id}/browse", "/operations"):
        assert expected in visited, f"the crawl never reached {expected}: {sorted(visited)}"
    assert problems == [], "\n".join(problems)
