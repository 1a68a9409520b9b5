"""The operations page in Chromium on the embedded stack: staff sees queues, workers and dead
letters and replays or discards them; an operator has no link and is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser.helpers import SCREENSHOTS, csrf, free_port, new_page
from playwright.async_api import Browser, Dialog, Page, expect

from proto.topology import EVENTS, PROCESSING_IMAGES

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Any]:
    from acquisition.settings import AcquisitionSettings
    from gridpilot.embedded import embedded_stack

    async with embedded_stack(
        ui_port=free_port(),
        api_port=free_port(),
        data_root=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}",
        acquisition=AcquisitionSettings(worker_heartbeat_s=1),
    ) as s:
        yield s


async def log_in(browser: Browser, stack: Any, who: str, path: str) -> Page:
    page = await new_page(browser)
    await page.goto(f"{stack.ui_url}/login?next={path}")
    await page.get_by_label("Username").fill(who)
    await page.get_by_label("Password").fill(stack.passwords[who])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{stack.ui_url}{path}")
    return page


async def test_staff_replays_and_discards_dead_letters(stack: Any, browser: Browser) -> None:
    for body in (b"{not json", b'{"half": "a message"}'):
        await stack.bus.publish_raw(EVENTS, "exposure.acquired", body, type="exposure.acquired")
    await stack.bus.drain()
    first, second = await stack.bus.dead_letters(PROCESSING_IMAGES)

    page = await log_in(browser, stack, "staff", "/")
    await page.get_by_role("link", name="Operations").click()
    await page.wait_for_url(f"{stack.ui_url}/operations")
    await expect(page).to_have_title("Operations · Gridpilot")
    queues = page.locator("table.ops-queues")
    await expect(queues.get_by_role("row", name="processing.images")).to_contain_text("2")
    workers = page.locator("table.ops-workers")
    await expect(workers).to_contain_text("acquisition")
    await expect(workers).to_contain_text("processing")
    letters = page.locator("#dlq-processing-images tbody tr")
    await expect(letters).to_have_count(2)
    await expect(letters.first).to_contain_text("not JSON")
    await page.screenshot(path=str(SCREENSHOTS / "operations-walk.png"), full_page=True)

    asked: list[str] = []

    async def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    row = letters.filter(has_text=first.key)
    await row.get_by_role("button", name="Replay").click()
    await expect(page.locator("#messages")).to_contain_text(f"Replayed {first.key}")
    assert "back on processing.images" in asked[-1]
    # still malformed: it is dead-lettered again, and shows up again on the next refresh
    await expect(letters).to_have_count(2, timeout=15_000)
    await letters.filter(has_text=second.key).get_by_role("button", name="Discard").click()
    await expect(page.locator("#messages")).to_contain_text(f"Discarded {second.key}")
    await expect(letters).to_have_count(1)
    await page.locator("#dlq-processing-images").get_by_role("button", name="Purge all").click()
    assert "cannot be replayed afterwards" in asked[-1]
    await expect(page.locator("#dlq-processing-images")).to_have_count(0)
    await expect(page.locator("#messages")).to_contain_text("Purged 1 dead letters")


async def test_operator_has_no_operations_page(stack: Any, browser: Browser) -> None:
    page = await log_in(browser, stack, "operator", "/")
    await expect(page.get_by_role("link", name="Operations")).to_have_count(0)
    response = await page.goto(f"{stack.ui_url}/operations")
    assert response is not None and response.status == 403
    await expect(page.locator("main")).to_contain_text(
        "Only staff can see the operations page; you are signed in as an operator."
    )
    r = await page.request.post(
        f"{stack.ui_url}/operations/dead-letters/processing.images/purge",
        headers={"HX-Request": "true", **await csrf(page)},
    )
    # to htmx a refusal is the message to show (a 4xx would be a console error)
    assert r.status == 200 and r.headers["gridpilot-status"] == "403"
    assert "Not allowed" in await r.text()
    text = await r.text()
    assert "Only staff can purge dead letters" in text, "refused by session-api, not as forged"
