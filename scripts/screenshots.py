"""Screenshots of the real pages for docs/screenshots: the embedded stack, a run, Chromium.

Usage: uv run --frozen python scripts/screenshots.py [--out docs/screenshots] [--only sessions]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright, expect

from acquisition.settings import AcquisitionSettings
from acquisition.simulator import Faults
from gridpilot.demo import seed_sessions
from gridpilot.embedded import embedded_stack

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
LAPTOP = {"width": 1440, "height": 900}


async def login(page: Page, ui: str, who: str, password: str, path: str) -> None:
    await page.goto(f"{ui}/login?next={path}")
    await page.get_by_label("Username").fill(who)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{ui}{path}")


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp())
    scopes = AcquisitionSettings().microscopes
    # the second scope writes every third movie truncated: the operations page has real
    # dead letters to show
    simulator = scopes[1].simulator.model_copy(update={"faults": Faults(truncate_every=3)})
    scopes[1] = scopes[1].model_copy(update={"simulator": simulator})
    acq = AcquisitionSettings(squares_per_grid=2, holes_per_square=3, microscopes=scopes)
    async with embedded_stack(
        ui_port=8190,
        api_port=8191,
        data_root=root / "data",
        database_url=f"sqlite+aiosqlite:///{root / 'gp.db'}",
        acquisition=acq,
    ) as stack:
        await seed_sessions(stack.api)
        async with httpx.AsyncClient(base_url=stack.api_url) as api:
            token = await api.post(
                "/api/auth/token",
                json={"username": "staff", "password": stack.passwords["staff"]},
            )
            api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            sessions = (await api.get("/api/sessions")).json()
            sid = next(s["id"] for s in sessions if s["microscope_id"] == "krios-1")
            faulty = next(s["id"] for s in sessions if s["microscope_id"] == scopes[1].id)
            r = await api.post(f"/api/sessions/{faulty}/start")
            r.raise_for_status()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = await browser.new_page(viewport=LAPTOP)
            await login(page, stack.ui_url, "staff", stack.passwords["staff"], f"/sessions/{sid}")
            await page.get_by_role("button", name="Start", exact=True).click()
            await expect(page.locator("#log-processing li").nth(3)).to_be_attached(timeout=180_000)
            await page.screenshot(path=str(out / "session-running.png"), full_page=True)
            await page.locator("#pause-toggle").click()
            await expect(page.get_by_role("alertdialog")).to_be_visible(timeout=300_000)
            await page.screenshot(path=str(out / "session-prompt-staff.png"), full_page=True)
            browse = await browser.new_page(viewport=LAPTOP)
            await login(
                browse, stack.ui_url, "staff", stack.passwords["staff"], f"/sessions/{sid}/browse"
            )
            await browse.screenshot(path=str(out / "session-browser.png"), full_page=True)
            await browse.goto(f"{stack.ui_url}/")
            await browse.screenshot(path=str(out / "dashboard.png"), full_page=True)
            await browse.goto(f"{stack.ui_url}/sessions")
            await browse.screenshot(path=str(out / "sessions.png"), full_page=True)
            await browse.goto(f"{stack.ui_url}/operations")
            await expect(browse.locator(".ops-letters tbody tr").first).to_be_visible(
                timeout=120_000
            )
            await browse.screenshot(path=str(out / "operations.png"), full_page=True)
            await browser.close()
    print(f"screenshots in {out}")  # noqa: T201


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def sessions_pages(out: Path) -> None:
    """The pages that set sessions up: New session (and its refusals), the session page's
    Set-up card and Skip buttons while a movie is held, Copy."""
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp())
    gate = root / "hold"
    scopes = AcquisitionSettings().microscopes
    simulator = scopes[0].simulator.model_copy(update={"faults": Faults(hold_file=gate)})
    scopes[0] = scopes[0].model_copy(update={"simulator": simulator})
    acq = AcquisitionSettings(squares_per_grid=2, holes_per_square=3, microscopes=scopes)
    async with embedded_stack(
        ui_port=free_port(),
        api_port=free_port(),
        data_root=root / "data",
        database_url=f"sqlite+aiosqlite:///{root / 'gp.db'}",
        acquisition=acq,
    ) as stack:
        await seed_sessions(stack.api)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = await browser.new_page(viewport=LAPTOP)
            password = stack.passwords["operator"]
            await login(page, stack.ui_url, "operator", password, "/sessions/new")
            await page.get_by_label("Session name").fill("Apoferritin 2026-12-04!")
            await page.get_by_label("Position 1", exact=True).fill("apo-01")
            await page.get_by_label("Position 2", exact=True).fill("apo-01")
            await page.get_by_label("Position 4", exact=True).fill("apo-04")
            await page.get_by_label("Holes per square").fill("-3")
            await page.get_by_role("button", name="Create session").click()
            await expect(page.locator("#err-name")).to_be_visible()
            await page.screenshot(path=str(out / "session-new-refused.png"), full_page=True)
            await page.goto(f"{stack.ui_url}/sessions/new")
            await page.get_by_label("Session name").fill("Apoferritin 2026-12-04")
            for position, grid in ((1, "apo-01"), (2, "apo-02"), (4, "apo-04")):
                await page.get_by_label(f"Position {position}", exact=True).fill(grid)
            await page.get_by_label("Krios").check()
            await page.get_by_label("Holes per square").fill("3")
            await page.get_by_label("Exposures per hole").fill("2")
            await page.get_by_label("Order").select_option("thinnest_ice")
            await page.screenshot(path=str(out / "session-new.png"), full_page=True)
            await page.get_by_role("button", name="Create session").click()
            await page.wait_for_url(f"{stack.ui_url}/sessions/*-*")
            gate.touch()
            await page.get_by_role("button", name="Start", exact=True).click()
            row = page.locator("#queue tr.qs-acquiring", has_text="hole")
            await expect(row).to_be_visible(timeout=180_000)
            await row.get_by_role("button", name="Skip this target").click()
            await expect(page.locator("#log-acquisition")).to_contain_text("asked to skip")
            await page.screenshot(path=str(out / "session-skip.png"), full_page=True)
            gate.unlink()
            await page.get_by_role("button", name="Stop", exact=True).click()
            await expect(page.locator("#run-state")).to_have_text("ended", timeout=120_000)
            await page.locator("#copy-session").click()
            await page.get_by_label("Position 1", exact=True).fill("apo-05")
            await page.screenshot(path=str(out / "session-copy.png"), full_page=True)
            await page.goto(f"{stack.ui_url}/sessions")
            await page.screenshot(path=str(out / "sessions.png"), full_page=True)
            await browser.close()
    print(f"screenshots of the session set-up pages in {out}")  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--only", choices=["sessions"], help="only the session set-up pages")
    args = parser.parse_args()
    if args.only != "sessions":
        asyncio.run(main(args.out))
    asyncio.run(sessions_pages(args.out))
