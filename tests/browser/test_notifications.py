"""Notifications in Chromium on the real embedded stack: the settings page (add, send test,
a failing destination's error, subscribe), *Notify me* on the session page, and the opt-in
browser alert when a pause prompt appears in a hidden tab."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser.helpers import free_port, new_page, stream_open
from playwright.async_api import Browser, Page, expect

from session_api.settings import NotifySettings
from support.receivers import MailInbox, mail_inbox

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOTS = os.environ.get("GRIDPILOT_DOC_SCREENSHOTS") == "1"
"""Set to write this page's pictures into docs/screenshots (the suite never does)."""

RECORD_NOTIFICATIONS = """
(() => {
  // What the page shows as desktop notifications, recorded: the real constructor is still
  // called (so a missing permission still throws), only wrapped.
  const Real = window.Notification;
  window.__notes = [];
  function Recorded(title, options) {
    window.__notes.push({ title: title, body: (options || {}).body, tag: (options || {}).tag });
    return new Real(title, options);
  }
  Recorded.requestPermission = Real.requestPermission.bind(Real);
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  window.Notification = Recorded;
  // Headless Chromium shows every page: hiding one is simulated, as a background tab
  // reports it (visibilityState "hidden" and a visibilitychange event).
  let hidden = false;
  Object.defineProperty(document, "visibilityState", { get: () => hidden ? "hidden" : "visible" });
  Object.defineProperty(document, "hidden", { get: () => hidden });
  window.__setHidden = (value) => {
    hidden = value;
    window.__hiddenAt = performance.now();
    document.dispatchEvent(new Event("visibilitychange"));
  };
  window.__streams = [];
  new MutationObserver(() => window.__streams.push(document.documentElement.dataset.stream))
    .observe(document.documentElement, { attributes: true, attributeFilter: ["data-stream"] });
})();
"""


@dataclass
class Live:
    stack: Any
    url: str
    api: httpx.AsyncClient
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def new_session(self, name: str, grids: int = 2, pause: bool = False) -> str:
        body = {
            "name": name,
            "microscope_id": "krios-1",
            "grids": [f"{name} g{i + 1}" for i in range(grids)],
            "pause_between_grids": pause,
        }
        r = await self.api.post("/api/sessions", headers=self.auth("operator"), json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    from acquisition.settings import AcquisitionSettings
    from gridpilot.embedded import embedded_stack

    async with embedded_stack(
        ui_port=free_port(),
        api_port=free_port(),
        data_root=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}",
        acquisition=AcquisitionSettings(squares_per_grid=1, holes_per_square=1),
        notify=NotifySettings(),  # nothing here waits on coalescing: the defaults
    ) as stack:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
            tokens = {}
            for who in ("viewer", "operator"):
                body = {"username": who, "password": stack.passwords[who]}
                tokens[who] = (await api.post("/api/auth/token", json=body)).json()["access_token"]
            yield Live(stack, stack.ui_url, api, tokens)


@pytest.fixture
async def mail() -> AsyncIterator[MailInbox]:
    async with mail_inbox() as inbox:
        yield inbox


async def log_in(browser: Browser, live: Live, who: str, path: str) -> tuple[Page, list[str]]:
    page = await new_page(browser)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{live.url}/login?next={path}")
    await page.get_by_label("Username").fill(who)
    await page.get_by_label("Password").fill(live.stack.passwords[who])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{live.url}{path}")
    return page, errors


async def add(page: Page, label: str, url: str) -> None:
    await page.get_by_label("Name").fill(label)
    await page.get_by_label("Apprise URL").fill(url)
    await page.get_by_role("button", name="Add destination").click()


async def test_settings_page_adds_tests_subscribes_and_shows_a_failure(
    live: Live, browser: Browser, mail: MailInbox
) -> None:
    sid = await live.new_session("notify page")
    page, errors = await log_in(browser, live, "viewer", "/")
    await page.get_by_role("link", name="Notifications").click()
    await page.wait_for_url(f"{live.url}/notifications")

    await add(page, "my mail", mail.url("viewer@example.org"))
    row = page.locator("#destinations tr[data-label='my mail']")
    await expect(row).to_contain_text("E-Mail")
    await expect(page.locator("#dest-label")).to_have_value("")  # the form is fresh again
    await page.get_by_role("button", name="Send test to my mail").click()
    await expect(page.locator("#messages")).to_contain_text("Test sent to my mail.")
    [letter] = await mail.wait_mail(1)
    assert "test message for my mail" in letter.subject
    await expect(row.locator(".badge")).to_have_text("ok")

    await add(page, "typo", "mailto:/nowhere")
    await expect(page.locator("#dest-url-error")).to_contain_text("not a URL")
    await expect(page.locator("#dest-url")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#dest-url")).to_have_value("mailto:/nowhere")  # kept to fix

    closed = free_port()  # nothing listens there
    await add(page, "dead hook", f"json://127.0.0.1:{closed}/hook")
    await page.get_by_role("button", name="Send test to dead hook").click()
    await expect(page.locator("#messages")).to_contain_text("Test to dead hook failed")
    dead = page.locator("#destinations tr[data-label='dead hook']")
    await expect(dead.locator(".badge")).to_have_text("failing")
    await expect(dead.locator(".delivery-error")).to_contain_text("Connection error")

    await page.locator("#sub-scope").select_option("microscope:krios-1")
    await page.get_by_label("Disk warning (or worse)").check()
    await page.get_by_role("button", name="Subscribe", exact=True).click()
    subs = page.locator("#subscriptions table")
    await expect(subs).to_contain_text("Every session of Krios")
    await expect(subs).to_contain_text("disk warning")
    if SCREENSHOTS:
        await page.locator("#messages").evaluate("el => el.replaceChildren()")
        await page.screenshot(path=str(DOCS / "notifications.png"), full_page=True)
    await page.locator("#sub-scope").select_option(f"session:{sid}")
    for box in await page.locator("#sub-form input[name=events]").all():
        await box.uncheck()
    await page.get_by_role("button", name="Subscribe", exact=True).click()
    await expect(page.locator("#sub-events-error")).to_have_text("choose at least one event")
    assert errors == []


async def test_notify_me_and_a_browser_alert_for_a_prompt_in_a_hidden_tab(
    live: Live, browser: Browser
) -> None:
    """*Notify me* subscribes the viewer to the session; with browser alerts on (permission
    granted), a pause prompt that appears while the page is hidden makes one desktop
    notification. Not covered: Chromium's own hiding of a background tab (headless shows
    every page, so hiding is simulated in the page), the notification as the desktop shows
    it, and a click on it bringing the tab forward."""
    sid = await live.new_session("alerts", grids=2, pause=True)
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    await context.grant_permissions(["notifications"], origin=live.url)
    await context.add_init_script(RECORD_NOTIFICATIONS)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{live.url}/login?next=/sessions/{sid}")
    await page.get_by_label("Username").fill("viewer")
    await page.get_by_label("Password").fill(live.stack.passwords["viewer"])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{live.url}/sessions/{sid}")
    await stream_open(page)

    notify_me = page.locator("#notify-me [role=switch][hx-post]")
    await expect(notify_me).to_have_attribute("aria-checked", "false")
    await notify_me.click()
    await expect(notify_me).to_have_attribute("aria-checked", "true")
    await expect(page.locator("#notify-me")).to_contain_text("Add a destination")
    mine = (await live.api.get("/api/notifications", headers=live.auth("viewer"))).json()
    assert [s["session_id"] for s in mine["subscriptions"]] == [sid]

    alerts = page.locator("#notify-me [data-browser-alerts]")
    await alerts.click()
    await expect(alerts).to_have_attribute("aria-checked", "true")
    await page.evaluate("window.__setHidden(true)")
    r = await live.api.post(f"/api/sessions/{sid}/start", headers=live.auth("operator"))
    assert r.status_code == 202, r.text
    await expect(page.get_by_role("alertdialog")).to_be_visible(timeout=90_000)
    notes = await page.evaluate("window.__notes")
    assert [n["title"] for n in notes] == ["alerts: paused between grids"]
    assert "alerts g1" in notes[0]["body"] and notes[0]["tag"].startswith("prompt:")
    # a page with alerts on keeps its stream while hidden (others give it back after 5 s)
    await page.wait_for_function("performance.now() - window.__hiddenAt > 6000")
    assert "parked" not in await page.evaluate("window.__streams")

    await page.evaluate("window.__setHidden(false)")
    r = await live.api.post(f"/api/sessions/{sid}/stop", headers=live.auth("operator"))
    assert r.status_code == 202, r.text
    await expect(page.locator("#exit-reason")).to_have_text("stopped", timeout=60_000)
    assert len(await page.evaluate("window.__notes")) == 1  # visible: nothing more
    assert errors == []
    if SCREENSHOTS:
        await page.screenshot(path=str(DOCS / "session-notify-me.png"))
    await context.close()
