"""The walk of issue 5 in Chromium on the real embedded stack (session-api, ui, acquisition
and processing on one MemoryBus with SQLite; simulated microscopes)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser.helpers import csrf, free_port, new_page, stream_open
from playwright.async_api import Browser, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@dataclass
class Live:
    stack: Any
    url: str
    api: httpx.AsyncClient
    token: str

    async def new_session(self, name: str, grids: int = 3, scope: str | None = None) -> str:
        h = {"Authorization": f"Bearer {self.token}"}
        scopes = (await self.api.get("/api/microscopes", headers=h)).json()
        body = {
            "name": name,
            "microscope_id": scope or scopes[0]["id"],
            "grids": [f"grid {i + 1}" for i in range(grids)],
        }
        r = await self.api.post("/api/sessions", headers=h, json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def logs(self, session_id: str) -> list[dict[str, Any]]:
        h = {"Authorization": f"Bearer {self.token}"}
        r = await self.api.get(f"/api/sessions/{session_id}/logs?limit=5000", headers=h)
        return list(r.json())


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    from acquisition.settings import AcquisitionSettings
    from gridpilot.embedded import embedded_stack

    acq = AcquisitionSettings(squares_per_grid=1, holes_per_square=2)
    async with embedded_stack(
        ui_port=free_port(),
        api_port=free_port(),
        data_root=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}",
        acquisition=acq,
    ) as stack:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
            r = await api.post(
                "/api/auth/token",
                json={"username": "operator", "password": stack.passwords["operator"]},
            )
            yield Live(stack, stack.ui_url, api, r.json()["access_token"])


async def log_in(browser: Browser, live: Live, who: str, path: str, size: Any = None) -> Page:
    page = await new_page(browser, size) if size else await new_page(browser)
    await page.goto(f"{live.url}/login?next={path}")
    await page.get_by_label("Username").fill(who)
    await page.get_by_label("Password").fill(live.stack.passwords[who])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{live.url}{path}")
    return page


def start(page: Page) -> Any:
    return page.get_by_role("button", name="Start", exact=True)


def stop(page: Page) -> Any:
    return page.get_by_role("button", name="Stop", exact=True)


async def test_operator_walk(live: Live, browser: Browser) -> None:
    sid = await live.new_session("walk")
    page = await log_in(browser, live, "operator", f"/sessions/{sid}")
    await stream_open(page)
    await expect(page.get_by_role("group", name="Staff controls")).to_have_count(0)
    await start(page).click()
    await expect(stop(page)).to_be_visible()
    await expect(page.locator("#log-acquisition li").first).to_be_visible(timeout=20_000)
    await expect(page.locator("#log-processing li").first).to_be_visible(timeout=30_000)
    await expect(page.locator("#queue .counts")).to_be_visible(timeout=30_000)

    toggle = page.locator("#pause-toggle")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-checked", "true")
    prompt = page.get_by_role("alertdialog")
    await expect(prompt).to_be_visible(timeout=90_000)

    await prompt.get_by_role("button", name="Continue current grid").click()
    await expect(prompt.locator(".reprompt")).to_be_visible(timeout=20_000)

    href = await prompt.get_by_role(
        "link", name="Add targets in the session browser"
    ).get_attribute("href")
    browse = await page.context.new_page()
    await browse.goto(f"{live.url}{href}")
    free = browse.locator("#atlas g.tgt.square.qs-none.cls-good")
    await free.first.click()
    await expect(browse.locator("#atlas g.tgt.square.qs-queued")).to_have_count(1)
    await expect(page.locator("#queue")).to_contain_text("queued", timeout=10_000)
    await browse.close()

    await prompt.get_by_role("button", name="Continue current grid").click()
    await expect(page.locator("#run-state")).to_have_text("running", timeout=20_000)
    await stop(page).click()
    # while stopping, or (a stop honoured at once) once it has ended
    await expect(page.locator("#popups")).to_contain_text(
        re.compile(r"Stop signal received|Run \d+ stopped")
    )
    try:
        await expect(start(page)).to_be_visible(timeout=60_000)
    except AssertionError as exc:
        h = {"Authorization": f"Bearer {live.token}"}
        run = (await live.api.get(f"/api/sessions/{sid}", headers=h)).json()["run"]
        raise AssertionError(f"Start never came back; session-api says the run is {run}") from exc
    await expect(page.locator("#exit-reason")).to_have_text("stopped")

    r = await page.request.post(f"{live.url}/sessions/{sid}/kill", headers=await csrf(page))
    assert r.status == 403 and "Only staff can force-kill a run" in await r.text()


async def test_staff_force_kill_and_lock_warning(live: Live, browser: Browser) -> None:
    sid = await live.new_session("staff run")
    second = await live.new_session("second on the same scope")
    page = await log_in(browser, live, "staff", f"/sessions/{sid}")
    await stream_open(page)
    await start(page).click()
    await expect(page.locator("#run-state")).to_have_text("running", timeout=20_000)
    await expect(page.locator("#log-acquisition li").first).to_be_visible(timeout=20_000)

    other = await page.context.new_page()
    await other.goto(f"{live.url}/sessions/{second}")
    await stream_open(other)
    await start(other).click()
    await expect(other.locator("#exit-reason")).to_have_text("locked", timeout=20_000)
    await expect(other.locator("#popups")).to_contain_text("locked")
    await other.get_by_role("link", name="Go to session staff run").first.click()
    await other.wait_for_url(f"{live.url}/sessions/{sid}")
    await other.close()

    page.on("dialog", lambda d: d.accept())
    await page.get_by_role("button", name="Force-kill all session processes").click()
    await expect(page.locator("#exit-reason")).to_have_text("killed", timeout=20_000)
    await start(page).click()
    await expect(page.locator("#run-state")).to_have_text("running", timeout=20_000)


async def test_reconnect_loses_no_line(live: Live, browser: Browser) -> None:
    sid = await live.new_session("reconnect", grids=1)
    page = await log_in(browser, live, "operator", f"/sessions/{sid}")
    await stream_open(page)
    await start(page).click()
    await expect(page.locator("#log-acquisition li").nth(3)).to_be_attached(timeout=30_000)
    await page.evaluate(
        """() => { const el = document.querySelector('[sse-connect]');
                   const src = el['htmx-internal-data'].sseEventSource;
                   src.close(); src.onerror(new Event('error')); }"""
    )
    await page.wait_for_function("document.documentElement.dataset.stream === 'down'")
    await stream_open(page)
    await expect(start(page)).to_be_visible(timeout=90_000)  # one grid: the run completes
    await live.stack.bus.drain()
    stored = await live.logs(sid)
    shown = await page.locator("ol.log li").evaluate_all("lis => lis.map(li => li.id)")
    assert len(shown) == len(set(shown))
    await expect(page.locator("ol.log li")).to_have_count(len(stored))
    shown = await page.locator("ol.log li").evaluate_all("lis => lis.map(li => li.id)")
    assert {f"l-{line['message_id']}" for line in stored} == set(shown)
