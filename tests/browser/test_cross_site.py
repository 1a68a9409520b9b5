"""Cross-site request forgery in Chromium (issue 14, "Done when"): a page served from another
port of the same host — same-site, so the ``SameSite=Lax`` login cookie goes along — tries to
start, stop, kill, toggle and log out with auto-submitted forms and with credentialed
cross-origin fetches. Nothing happens, every attempt is refused (403) and audited, and the
victim is still logged in.

The real embedded stack: session-api, ui, acquisition and processing on one MemoryBus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser.helpers import free_port, new_page, serve
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Browser, expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@dataclass
class Target:
    stack: Any
    api: httpx.AsyncClient
    running: str
    idle: str


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Target]:
    """The victim's Gridpilot: a session with a live run and an idle one (staff's token)."""
    from acquisition.settings import AcquisitionSettings
    from gridpilot.embedded import embedded_stack

    async with embedded_stack(
        ui_port=free_port(),
        api_port=free_port(),
        data_root=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}",
        acquisition=AcquisitionSettings(squares_per_grid=1, holes_per_square=2),
    ) as stack:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
            r = await api.post(
                "/api/auth/token",
                json={"username": "staff", "password": stack.passwords["staff"]},
            )
            api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            scope = (await api.get("/api/microscopes")).json()[0]["id"]
            ids = []
            for name in ("running", "idle"):
                body = {"name": name, "microscope_id": scope, "grids": ["g1", "g2", "g3"]}
                ids.append((await api.post("/api/sessions", json=body)).json()["id"])
            assert (await api.post(f"/api/sessions/{ids[0]}/start")).status_code == 202
            yield Target(stack, api, *ids)


def attacker(ui: str, running: str, idle: str) -> FastAPI:
    """The attacking page: five forms posted into hidden frames on load, and the same five
    requests as ``fetch(..., {credentials: "include"})``; its title says when all are done."""
    attempts = [
        (f"/sessions/{running}/stop", {}),
        (f"/sessions/{running}/kill", {}),
        (f"/sessions/{running}/pause-between-grids", {"enabled": "true"}),
        (f"/sessions/{idle}/start", {"csrf_token": "guessed"}),
        ("/logout", {}),
    ]
    forms = "".join(
        f'<iframe name="f{i}"></iframe><form id="form{i}" method="post" action="{ui}{path}"'
        f' target="f{i}">'
        + "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
        + "</form>"
        for i, (path, fields) in enumerate(attempts)
    )
    fetches = ",".join(
        f'fetch("{ui}{path}", {{method: "POST", credentials: "include", mode: "cors", '
        f"body: new URLSearchParams({dict(fields)!r})}}).catch(function () {{}})"
        for path, fields in attempts
    )
    n = len(attempts)
    page = f"""<!doctype html><title>waiting</title><body>{forms}<script>
      var loaded = 0;
      for (var i = 0; i < {n}; i++) {{
        document.querySelector('iframe[name="f' + i + '"]').addEventListener("load", function () {{
          loaded++; if (loaded === {n}) {{ Promise.all([{fetches}]).then(function () {{
            document.title = "done"; }}); }}
        }});
      }}
      for (var j = 0; j < {n}; j++) {{ document.getElementById("form" + j).submit(); }}
    </script></body>"""
    app = FastAPI()

    @app.get("/")
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app


async def test_another_port_of_the_host_can_neither_act_nor_log_out(
    target: Target, browser: Browser
) -> None:
    stack, api = target.stack, target.api
    page = await new_page(browser)
    await page.goto(f"{stack.ui_url}/login?next=/sessions/{target.running}")
    await page.get_by_label("Username").fill("staff")
    await page.get_by_label("Password").fill(stack.passwords["staff"])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{stack.ui_url}/sessions/{target.running}")
    before = (await api.get(f"/api/sessions/{target.running}")).json()

    evil_port = free_port()
    evil = attacker(stack.ui_url, target.running, target.idle)
    async with serve(evil, evil_port):
        lure = await page.context.new_page()
        await lure.goto(f"http://127.0.0.1:{evil_port}/")  # same host, another port
        await expect(lure).to_have_title("done", timeout=30_000)

    running = (await api.get(f"/api/sessions/{target.running}")).json()
    assert running["run"]["id"] == before["run"]["id"]
    assert running["run"]["state"] in ("starting", "running"), running["run"]
    assert running["pause_between_grids"] is False
    assert (await api.get(f"/api/sessions/{target.idle}")).json()["run"] is None
    await page.reload()
    await expect(page.get_by_label("Logged in user")).to_contain_text("staff")

    audit = (await api.get("/api/audit", params={"limit": 1000})).json()
    refused = [a for a in audit if (a["detail"] or "").startswith("ui refused")]
    assert len(refused) == 10, refused  # five forms, five fetches
    assert {a["username"] for a in refused} == {"staff"}
    assert {a["outcome"] for a in refused} == {"refused 403"}
    assert {a["action"] for a in refused} == {
        "stop",
        "kill",
        "pause-between-grids",
        "start",
        "logout",
    }
    assert all("another site" in a["detail"] or "another origin" in a["detail"] for a in refused)
    done = {(a["action"], a["outcome"]) for a in audit if a["username"] == "staff"}
    assert not done & {("stop", "ok"), ("kill", "ok"), ("pause-between-grids", "ok")}
