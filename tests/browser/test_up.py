"""The walk against `gridpilot up`: four service processes on RabbitMQ, runs as child processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from browser.helpers import free_port, new_page, stream_open
from playwright.async_api import Browser, expect

from support.broker import delete_namespace, require_rabbitmq

pytestmark = [pytest.mark.browser, pytest.mark.rabbitmq, pytest.mark.timeout(300)]
PASSWORD = "up-walk-password"
FAST_SCOPE = {
    "id": "krios-up",
    "name": "Krios (up)",
    "speed": 2000,
    "atlas_px": 1024,
    "square_px": 768,
    "movie_px": 256,
    "frames": 4,
    "faults": {"slow_file_s": 0.3},
}


async def _run(*args: str, env: dict[str, str], stdin: bytes = b"") -> None:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate(stdin)
    assert proc.returncode == 0, out.decode()


@pytest.fixture
async def up(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    require_rabbitmq()
    ns = f"up{uuid4().hex[:8]}"
    ui_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "AMQP_NAMESPACE": ns,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}",
        "ACQUISITION_MICROSCOPES": json.dumps([FAST_SCOPE]),
        "ACQUISITION_SQUARES_PER_GRID": "1",
        "ACQUISITION_HOLES_PER_SQUARE": "2",
        "ACQUISITION_REPORT_INTERVAL_S": "1",
        "ACQUISITION_METRICS_PORT": str(free_port()),
        "PROCESSING_METRICS_PORT": str(free_port()),
    }
    gridpilot = str(Path(sys.executable).parent / "gridpilot")
    await _run(
        gridpilot,
        "users",
        "add",
        "operator",
        "--role",
        "operator",
        env=env,
        stdin=f"{PASSWORD}\n".encode(),
    )
    proc = await asyncio.create_subprocess_exec(
        gridpilot,
        "up",
        "--root",
        str(tmp_path),
        "--ui-port",
        str(ui_port),
        "--api-port",
        str(api_port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(90):
            while b"Gridpilot is up" not in await proc.stdout.readline():
                assert proc.returncode is None, "gridpilot up exited"
        yield f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{api_port}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
        delete_namespace(ns)


async def test_operator_walk_on_rabbitmq(up: tuple[str, str], browser: Browser) -> None:
    ui, api = up
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        token = (
            await client.post(
                "/api/auth/token", json={"username": "operator", "password": PASSWORD}
            )
        ).json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        async with asyncio.timeout(30):  # acquisition reports its microscope within a second
            while not (await client.get("/api/microscopes")).json():
                await asyncio.sleep(0.2)  # another process: nothing to subscribe to from here
        r = await client.post(
            "/api/sessions",
            json={"name": "up walk", "microscope_id": "krios-up", "grids": ["g1", "g2"]},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
    page = await new_page(browser)
    await page.goto(f"{ui}/login?next=/sessions/{sid}")
    await page.get_by_label("Username").fill("operator")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{ui}/sessions/{sid}")
    await stream_open(page)
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#run-state")).to_have_text("running", timeout=30_000)
    await expect(page.locator("#log-acquisition li").nth(2)).to_be_attached(timeout=60_000)
    await expect(page.locator("#log-processing li").first).to_be_attached(timeout=60_000)
    await page.get_by_role("button", name="Stop", exact=True).click()
    # while stopping, or (a stop honoured at once) once it has ended
    await expect(page.locator("#popups")).to_contain_text(
        re.compile(r"Stop signal received|Run \d+ stopped")
    )
    await expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible(timeout=60_000)
    await expect(page.locator("#exit-reason")).to_have_text("stopped")
