"""Run control latency in the browser: a button pressed in Chromium → the new state in the
page's DOM, on RabbitMQ with every service in its own process (``gridpilot up``) and each run
in its own child process.

Run ``uv run --frozen python benchmarks/control.py [--n N] [--quick]``; prints a table and
writes ``benchmarks/results/control.json``. See ``benchmarks/README.md`` (section *control*)
for what each row measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# benchmarks/ goes last on sys.path: its processing.py must not shadow the processing service
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.append(str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.fix_sys_path()

import httpx  # noqa: E402
from playwright.async_api import Browser, Page, async_playwright  # noqa: E402
from playwright.async_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from support.broker import delete_namespace  # noqa: E402

TARGET_MS = 150.0
LOCKED_TARGET_MS = 1000.0
"""A start that finds the scope locked: the run's log line → `locked` shown (issue 16)."""
GRIDS = 12  # SessionCreate allows at most 12 grids
BUDGET_S = 1800
PASSWORD = "bench-control-password"
CHROMIUM = "/usr/bin/chromium"
ARGS = [  # tests/browser/helpers.ARGS
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Small, fast simulated scopes. The first writes its movies slowly, so a started run is still
# running when it is stopped; the second runs grids to the pause-between-grids prompt.
SCOPES = [
    {
        "id": "bench-1",
        "name": "Bench 1",
        "speed": 2000,
        "atlas_px": 1024,
        "square_px": 768,
        "movie_px": 256,
        "frames": 4,
        "faults": {"slow_file_s": 0.5},
    },
    {
        "id": "bench-2",
        "name": "Bench 2",
        "speed": 5000,
        "atlas_px": 1024,
        "square_px": 768,
        "movie_px": 256,
        "frames": 4,
    },
]

log = logging.getLogger("bench.control")
Raw = dict[str, list[float]]

WATCH = """
(checks) => {
  // Note (performance.now()) when the next click happens, when its answer has come, and
  // when each named check first holds after it (a MutationObserver: the moment the DOM
  // changed, before the frame is painted).
  const text = (sel) => {
    const el = document.querySelector(sel);
    return el ? el.textContent.trim() : "";
  };
  const run = () => {
    const el = document.querySelector("#process code[title]");
    return el ? el.title : "";
  };
  const lines = (word) => Array.from(document.querySelectorAll("#log-acquisition li"))
      .filter((li) => li.textContent.includes(word)).length;
  const was = { run: run(), lockLines: lines("not connecting") };
  const CHECKS = {
    live: () => !!document.querySelector("#controls .main.stop"),
    running: () => run() !== was.run && text("#run-state") === "running",
    pause_on: () => text("#pause-toggle b") === "on",
    pause_off: () => text("#pause-toggle b") === "off",
    stopping: () => !!document.querySelector("#controls .main.stopping"),
    ended: () => text("#run-state") === "ended",
    lock_log: () => lines("not connecting") > was.lockLines,
    locked: () => run() !== was.run && text("#exit-reason") === "locked",
    reprompt: () => !!document.querySelector("#decision .reprompt"),
    next_grid: () => !document.querySelector("#decision") && text("#run-state") === "running",
  };
  const b = window.__bench = { press: null, answer: null, seen: {} };
  const check = () => {
    if (b.press === null) return;
    for (const name of checks) {
      if (!(name in b.seen) && CHECKS[name]()) b.seen[name] = performance.now();
    }
    if (checks.every((name) => name in b.seen)) observer.disconnect();
  };
  const observer = new MutationObserver(check);
  const all = { subtree: true, childList: true, characterData: true, attributes: true };
  observer.observe(document.body, all);
  const first = { capture: true, once: true };
  document.addEventListener("click", (e) => { b.press = e.timeStamp; check(); }, first);
  // the answer: when its response ended (resource timing; htmx's own events go to the pressed
  // button, which the stream may have replaced by then)
  performance.clearResourceTimings();
  new PerformanceObserver((list) => {
    for (const r of list.getEntries()) {
      if (b.answer === null && r.initiatorType === "xmlhttprequest") b.answer = r.responseEnd;
    }
  }).observe({ type: "resource" });
}
"""


@dataclass
class Up:
    """``gridpilot up`` on a fresh broker namespace and database."""

    ui: str
    api: str
    proc: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def gridpilot_up(root: Path) -> AsyncIterator[Up]:
    ns = f"benchctl{uuid.uuid4().hex[:8]}"
    ui_port, api_port = common_free_port(), common_free_port()
    env = {
        **os.environ,
        "AMQP_NAMESPACE": ns,
        "DATABASE_URL": f"sqlite+aiosqlite:///{root / 'gp.db'}",
        "ACQUISITION_MICROSCOPES": json.dumps(SCOPES),
        "ACQUISITION_SQUARES_PER_GRID": "1",
        "ACQUISITION_HOLES_PER_SQUARE": "2",
        "ACQUISITION_METRICS_PORT": str(common_free_port()),
        "PROCESSING_METRICS_PORT": str(common_free_port()),
    }
    gridpilot = str(Path(sys.executable).parent / "gridpilot")
    add = await asyncio.create_subprocess_exec(
        gridpilot, "users", "add", "operator", "--role", "operator", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await add.communicate(f"{PASSWORD}\n".encode())
    if add.returncode != 0:
        raise RuntimeError("gridpilot users add failed")
    proc = await asyncio.create_subprocess_exec(
        gridpilot, "up", "--root", str(root), "--ui-port", str(ui_port),
        "--api-port", str(api_port), env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(120):
            while b"Gridpilot is up" not in await proc.stdout.readline():
                if proc.returncode is not None:
                    raise RuntimeError("gridpilot up exited")
        yield Up(f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{api_port}", proc)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
        delete_namespace(ns)


def common_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def api_client(up: Up) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=up.api, timeout=30)
    r = await client.post("/api/auth/token", json={"username": "operator", "password": PASSWORD})
    r.raise_for_status()
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    async with asyncio.timeout(60):  # acquisition reports its microscopes within seconds
        while len((await client.get("/api/microscopes")).json()) < len(SCOPES):
            await asyncio.sleep(0.2)  # another process: nothing to subscribe to from here
    return client


async def new_session(api: httpx.AsyncClient, name: str, scope: str, **extra: Any) -> str:
    grids = extra.pop("grids", 2)
    body = {"name": name, "microscope_id": scope, "grids": [f"g{i + 1}" for i in range(grids)]}
    r = await api.post("/api/sessions", json={**body, **extra})
    r.raise_for_status()
    return str(r.json()["id"])


async def open_page(browser: Browser, up: Up, sid: str) -> Page:
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(60_000)
    await page.goto(f"{up.ui}/login?next=/sessions/{sid}")
    await page.get_by_label("Username").fill("operator")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{up.ui}/sessions/{sid}")
    await page.wait_for_function("document.documentElement.dataset.stream === 'open'")
    return page


async def press(page: Page, button: str, *checks: str, timeout_s: float = 60) -> dict[str, float]:
    """Click ``button`` (a CSS selector) and wait until every check holds; returns ms from the
    click to each check, and to the answer (``answer``)."""
    await page.evaluate(WATCH, list(checks))
    await page.locator(button).click()
    names = json.dumps(list(checks))
    try:
        await page.wait_for_function(
            f"window.__bench.answer !== null && {names}.every((n) => n in window.__bench.seen)",
            timeout=timeout_s * 1000,
            polling=50,
        )
    except PlaywrightTimeout as exc:
        shown = await page.evaluate(
            """() => ({bench: window.__bench,
                       controls: document.querySelector('#controls').outerHTML,
                       process: document.querySelector('#process').innerText,
                       messages: document.querySelector('#messages').innerText})"""
        )
        raise RuntimeError(f"{button} → {checks} never shown: {shown}") from exc
    got: dict[str, Any] = await page.evaluate("window.__bench")
    out = {name: got["seen"][name] - got["press"] for name in checks}
    out["answer"] = got["answer"] - got["press"]
    return out


async def start_stop_lock(
    browser: Browser, up: Up, api: httpx.AsyncClient, n: int, raw: Raw
) -> None:
    """n runs on bench-1: Start, pause on, pause off, a second session's Start that finds the
    scope locked, Stop; each run ends before the next. Every run is of a fresh session (a
    restarted one would leave out the grids its earlier runs finished, and run out of them)."""
    page = await open_page(browser, up, await new_session(api, "bench", "bench-1"))
    locked = await open_page(browser, up, await new_session(api, "bench locked", "bench-1"))
    for i in range(n):
        sid = await new_session(api, f"bench control {i}", "bench-1", grids=GRIDS)
        await page.goto(f"{up.ui}/sessions/{sid}")
        await page.wait_for_function("document.documentElement.dataset.stream === 'open'")
        t = await press(page, "#controls .main.start", "live", "running")
        raw["Start → run shown (Stop button)"].append(t["live"])
        raw["Start → `running` shown"].append(t["running"])
        raw["answer: Start"].append(t["answer"])
        for word in ("on", "off"):
            t = await press(page, "#pause-toggle", f"pause_{word}")
            raw[f"pause toggle → `{word}` shown"].append(t[f"pause_{word}"])
            raw["answer: pause toggle"].append(t["answer"])
        t = await press(locked, "#controls .main.start", "lock_log", "locked")
        raw["locked Start: log line → `locked` shown"].append(t["locked"] - t["lock_log"])
        raw["locked Start → `locked` shown"].append(t["locked"])
        t = await press(page, "#controls .main.stop", "stopping", "ended")
        raw["Stop → `stopping…` shown"].append(t["stopping"])
        raw["Stop → `ended` shown (soft stop)"].append(t["ended"])
        raw["answer: Stop"].append(t["answer"])
        log.info("run %d of %d: start, pause on/off, locked start, stop", i + 1, n)
    await page.close()
    await locked.close()


async def decisions(browser: Browser, up: Up, api: httpx.AsyncClient, n: int, raw: Raw) -> None:
    """Runs on bench-2 with pause between grids on: at each grid's prompt, Continue current
    grid (nothing queued: the run prompts again at once) and then Next grid (→ running); on
    the last grid, Stop."""
    k = 0
    while len(raw["decision: Next grid → prompt gone, `running`"]) < n:
        sid = await new_session(
            api, f"bench decide {k}", "bench-2", grids=GRIDS, pause_between_grids=True
        )
        k += 1
        page = await open_page(browser, up, sid)
        await page.locator("#controls .main.start").click()
        for grid in range(GRIDS):
            await page.locator("#decision").wait_for(timeout=120_000)
            t = await press(page, "#decision button.primary", "reprompt")
            raw["decision: Continue → prompt again"].append(t["reprompt"])
            raw["answer: decision"].append(t["answer"])
            done = len(raw["decision: Next grid → prompt gone, `running`"]) >= n
            if grid == GRIDS - 1 or done:
                await press(page, "#controls .main.stop", "ended")
                break
            t = await press(page, "#decision button:not(.primary)", "next_grid")
            raw["decision: Next grid → prompt gone, `running`"].append(t["next_grid"])
            raw["answer: decision"].append(t["answer"])
        log.info("decisions: %d of %d", len(raw["decision: Next grid → prompt gone, `running`"]), n)
        await page.close()


ROWS: list[tuple[str, float | None]] = [
    ("Start → run shown (Stop button)", TARGET_MS),
    ("Start → `running` shown", None),
    ("pause toggle → `on` shown", TARGET_MS),
    ("pause toggle → `off` shown", TARGET_MS),
    ("Stop → `stopping…` shown", TARGET_MS),
    ("Stop → `ended` shown (soft stop)", None),
    ("decision: Continue → prompt again", TARGET_MS),
    ("decision: Next grid → prompt gone, `running`", TARGET_MS),
    ("locked Start → `locked` shown", None),
    ("locked Start: log line → `locked` shown", LOCKED_TARGET_MS),
    ("answer: Start", None),
    ("answer: Stop", None),
    ("answer: pause toggle", None),
    ("answer: decision", None),
]


async def main() -> int:
    parser = common.base_parser(__doc__, default_n=30)
    args = parser.parse_args()
    n = args.n or (4 if args.quick else 30)
    system_log = common.redirect_stderr("control")
    common.quiet_logging(log)
    log.info("logs of the system under test (and its run processes) go to %s", system_log)
    load_before = os.getloadavg()
    raw: Raw = defaultdict(list)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gp-bench-control-") as tmp:
        async with asyncio.timeout(BUDGET_S), gridpilot_up(Path(tmp)) as up:
            api = await api_client(up)
            try:
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                    try:
                        await start_stop_lock(browser, up, api, n, raw)
                        log.info("start/stop/lock done after %.0f s", time.perf_counter() - t0)
                        await decisions(browser, up, api, n, raw)
                    finally:
                        await browser.close()
            finally:
                await api.aclose()
    load_after = os.getloadavg()
    rows = [common.row(name, raw[name], target) for name, target in ROWS]
    common.print_table(
        f"control latency in Chromium on RabbitMQ, n={n} per row (ms from the click; "
        f"load average {load_before[0]:.2f} → {load_after[0]:.2f})",
        rows,
    )
    path = common.write_json(
        "control",
        common.clean(rows),
        dict(raw),
        {
            "n": n,
            "target_p95_ms": TARGET_MS,
            "locked_target_p95_ms": LOCKED_TARGET_MS,
            "cpus": os.cpu_count(),
            "load_average": {"before": load_before, "after": load_after},
        },
    )
    print(f"\nwrote {path}")
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    common.run_main(main, "control")
