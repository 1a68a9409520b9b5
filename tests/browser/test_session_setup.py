"""Sessions from the browser in Chromium on the real embedded stack: the New session form
(its refusals beside the fields), an atlas-only run of three grids, a square chosen by hand,
the Skip buttons while the next run goes, Copy and Archive — with no console error on any
page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser.helpers import free_port, new_page, stream_open
from playwright.async_api import Browser, ConsoleMessage, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@dataclass
class Stack:
    stack: Any
    url: str
    gate: Path
    """While this file exists, every movie of the first microscope waits mid-exposure."""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    from acquisition.settings import AcquisitionSettings
    from acquisition.simulator import Faults
    from gridpilot.embedded import embedded_stack

    gate = tmp_path / "hold"
    scopes = AcquisitionSettings().microscopes
    simulator = scopes[0].simulator.model_copy(update={"faults": Faults(hold_file=gate)})
    scopes[0] = scopes[0].model_copy(update={"simulator": simulator})
    acq = AcquisitionSettings(squares_per_grid=1, holes_per_square=2, microscopes=scopes)
    async with embedded_stack(
        ui_port=free_port(),
        api_port=free_port(),
        data_root=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}",
        acquisition=acq,
    ) as running:
        yield Stack(running, running.ui_url, gate)


async def operator_page(browser: Browser, s: Stack, path: str) -> tuple[Page, list[str]]:
    page = await new_page(browser)
    errors: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{page.url}: {message.text}")

    page.on("console", seen)
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    await page.goto(f"{s.url}/login?next={path}")
    await page.get_by_label("Username").fill("operator")
    await page.get_by_label("Password").fill(s.stack.passwords["operator"])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{s.url}{path}")
    return page, errors


async def test_new_session_skip_copy_archive(stack: Stack, browser: Browser) -> None:
    page, errors = await operator_page(browser, stack, "/sessions")
    await page.locator("#new-session").click()
    await page.wait_for_url(f"{stack.url}/sessions/new")

    # refused: each reason beside its field, what was typed kept
    await page.get_by_label("Session name").fill("today!")
    await page.get_by_label("Position 3", exact=True).fill("apo-c")
    await page.get_by_label("Exposures per hole").fill("50")
    await page.get_by_role("button", name="Create session").click()
    await expect(page.locator("#err-name")).to_contain_text("letters, digits")
    await expect(page.locator("#err-microscope_id")).to_have_text("Required.")
    await expect(page.locator("#err-exposures_per_hole")).to_have_text("At most 20.")
    await expect(page.get_by_label("Position 3", exact=True)).to_have_value("apo-c")

    await page.get_by_label("Session name").fill("Apoferritin today")
    await page.get_by_label("Krios").check()
    await page.get_by_label("Position 1", exact=True).fill("apo-a")
    await page.get_by_label("Position 5", exact=True).fill("apo-e")
    await page.get_by_label("Exposures per hole").fill("3")
    await page.get_by_label("Order").select_option("thinnest_ice")
    await page.get_by_label("Atlas only").check()
    await page.get_by_role("button", name="Create session").click()
    await page.wait_for_url(f"{stack.url}/sessions/*-*")
    sid = page.url.rsplit("/", 1)[1]
    setup = page.locator("#session-setup")
    await expect(setup).to_contain_text("atlas only")
    await expect(setup).to_contain_text("thinnest ice first · 3 exposures per hole")
    await expect(setup.locator(".slot")).to_have_text(["1 apo-a", "3 apo-c", "5 apo-e"])

    # atlas only: the run takes the three atlases, queues nothing and ends
    await stream_open(page)
    await page.get_by_role("button", name="Start", exact=True).click()
    log = page.locator("#log-acquisition")
    await expect(log).to_contain_text("atlas only: queued none", timeout=60_000)
    await expect(page.locator("#run-state")).to_have_text("ended", timeout=60_000)
    await expect(page.locator("#exit-reason")).to_have_text("completed")

    # a square chosen by hand on the first grid's atlas; the queue panel shows it
    browse = await page.context.new_page()
    await browse.goto(f"{stack.url}/sessions/{sid}/browse")
    await browse.get_by_role("link", name="1. apo-a").click()
    await browse.locator("#atlas g.tgt.square.qs-none.cls-good").first.click()
    await expect(browse.locator("#atlas g.tgt.square.qs-queued")).to_have_count(1)
    await browse.close()
    await page.reload()
    await expect(page.locator("#queue tr.qs-queued", has_text="square")).to_have_count(1)

    # the second run: a movie of the square's first hole is held while both skips arrive
    await stream_open(page)
    stack.gate.touch()
    await page.get_by_role("button", name="Start", exact=True).click()
    acquiring = page.locator("#queue tr.qs-acquiring", has_text="hole")
    await expect(acquiring).to_be_visible(timeout=60_000)
    hole = (await acquiring.locator("td").nth(1).inner_text()).split(" · ")[0]
    await acquiring.get_by_role("button", name="Skip this target").click()
    await expect(page.locator("#messages")).to_contain_text(f"Skip of {hole} sent")
    await expect(log).to_contain_text(f"asked to skip {hole}, being acquired", timeout=20_000)
    await acquiring.get_by_role("button", name="Skip rest of this square").click()
    await expect(log).to_contain_text("1 queued hole, the hole being acquired", timeout=20_000)
    await expect(page.locator("#queue tr.qs-queued", has_text="hole")).to_have_count(0)
    await expect(page.locator("#queue .recent > .qs-skipped")).to_have_count(1)  # the other
    await expect(page.locator("#queue .counts")).to_contain_text("skipped 1")
    stack.gate.unlink()
    await expect(log).to_contain_text(f"{hole} skipped as asked by operator", timeout=30_000)
    await expect(page.locator("#run-state")).to_have_text("ended", timeout=60_000)
    await expect(page.locator("#exit-reason")).to_have_text("completed")
    browse = await page.context.new_page()
    await browse.goto(f"{stack.url}/sessions/{sid}/browse")
    await browse.get_by_role("link", name="1. apo-a").click()
    await expect(browse.locator("#square g.tgt.hole.qs-skipped")).to_have_count(2)
    await browse.close()

    # copy: same plan, new grids
    await page.locator("#copy-session").click()
    await page.wait_for_url(f"{stack.url}/sessions/{sid}/copy")
    await expect(page.get_by_label("Position 1", exact=True)).to_have_attribute(
        "placeholder", "apo-a"
    )
    await page.get_by_label("Session name").fill("Apoferritin tomorrow")
    await page.get_by_label("Position 2", exact=True).fill("apo-d")
    await page.get_by_role("button", name="Create the copy").click()
    await page.wait_for_url(f"{stack.url}/sessions/*-*")
    assert page.url.rsplit("/", 1)[1] != sid
    await expect(page.locator("#session-setup")).to_contain_text("thinnest ice first")

    # archive the old one: gone from the list, shown by the filter, cannot start
    await page.goto(f"{stack.url}/sessions/{sid}")
    page.on("dialog", lambda d: d.accept())
    await page.locator("#archive-session").click()
    await expect(page.locator("#archived-badge")).to_be_visible()
    await expect(page.get_by_role("button", name="Start", exact=True)).to_be_disabled()
    await page.goto(f"{stack.url}/sessions")
    await expect(page.locator("#session-list")).not_to_contain_text("Apoferritin today")
    await page.locator("#f-archived").select_option("only")
    await expect(page.locator("#session-list")).to_contain_text("Apoferritin today")
    await expect(page.locator("#session-list .badge.archived")).to_have_count(1)
    assert not errors, errors
