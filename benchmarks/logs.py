"""Live log latency: a ``LogRecorded`` published on the bus → its ``<li>`` in the page's DOM,
with 1 and with many open session pages (Chromium, one browser context, embedded stack).

Run ``uv run --frozen python benchmarks/logs.py [--n N] [--pages 1,50] [--quick]``; prints a
table and writes ``benchmarks/results/logs.json``. See ``benchmarks/README.md`` (section
*logs*) for the method.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks/ goes last on sys.path: its processing.py must not shadow the processing service
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.append(str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.fix_sys_path()

import httpx  # noqa: E402
from playwright.async_api import Browser, BrowserContext, Page, async_playwright  # noqa: E402

from acquisition.settings import AcquisitionSettings  # noqa: E402
from gridpilot.embedded import Stack, embedded_stack  # noqa: E402
from proto.messages.log import LogRecorded  # noqa: E402

TARGET_MS = 250.0
CHROMIUM = "/usr/bin/chromium"
ARGS = [  # tests/browser/helpers.ARGS
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_S = 30.0
"""How long one record may take to reach every page before the benchmark gives up."""
BUDGET_S = 900

log = logging.getLogger("bench.logs")

REPORT_AFTER_MS = 300
"""A page reports a record's arrival time (noted when it arrived) this much later: the report
(page → browser → Playwright driver → this process) would otherwise load the machine while the
other pages are still receiving the record."""

OBSERVE = """
(reportAfterMs) => {
  // Record, for every <li> added to the acquisition log, when it entered the DOM (epoch ms).
  window.__seen = window.__seen || {};
  window.__wait = window.__wait || {};
  const list = document.querySelector("ol#log-acquisition");
  const note = (li, at) => {
    if (!li.id || li.id in window.__seen) return;
    window.__seen[li.id] = at;
    const waiter = window.__wait[li.id];
    if (waiter) { delete window.__wait[li.id]; setTimeout(() => waiter(at), reportAfterMs); }
  };
  new MutationObserver((records) => {
    const at = performance.timeOrigin + performance.now();
    for (const r of records) for (const n of r.addedNodes) if (n.nodeType === 1) note(n, at);
  }).observe(list, { childList: true });
  return list.children.length;
}
"""
ARRIVED = """
(id) => new Promise((resolve) => {
  if (id in window.__seen) { resolve(window.__seen[id]); return; }
  window.__wait[id] = resolve;
})
"""
NOW = "() => performance.timeOrigin + performance.now()"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def open_page(context: BrowserContext, url: str, timeout_ms: float = 30_000) -> Page:
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    await page.goto(url)
    await page.wait_for_function("document.documentElement.dataset.stream === 'open'")
    await page.evaluate(OBSERVE, REPORT_AFTER_MS)
    return page


async def log_in(context: BrowserContext, stack: Stack, path: str) -> Page:
    page = await context.new_page()
    page.set_default_timeout(30_000)
    await page.goto(f"{stack.ui_url}/login?next={path}")
    await page.get_by_label("Username").fill("viewer")
    await page.get_by_label("Password").fill(stack.passwords["viewer"])
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{stack.ui_url}{path}")
    await page.wait_for_function("document.documentElement.dataset.stream === 'open'")
    await page.evaluate(OBSERVE, REPORT_AFTER_MS)
    return page


async def probe_same_context(context: BrowserContext, url: str, want: int = 7) -> dict[str, Any]:
    """How many session pages one browser context (one user's browser) can hold open: each
    page keeps an SSE connection, and HTTP/1.1 allows a browser 6 connections per origin."""
    pages: list[Page] = []
    error = None
    try:
        for _ in range(want):
            pages.append(await open_page(context, url, timeout_ms=10_000))
    except Exception as exc:
        error = str(exc).splitlines()[0]
    finally:
        for page in pages:
            await page.close()
    return {"asked": want, "opened_with_stream": len(pages), "error": error}


async def clock_offset(page: Page, tries: int = 10) -> dict[str, float]:
    """Browser wall clock minus this process's, bracketed by the round trip (ms)."""
    best: dict[str, float] = {"offset_ms": 0.0, "round_trip_ms": float("inf")}
    for _ in range(tries):
        before = time.time_ns() / 1e6
        theirs = float(await page.evaluate(NOW))
        after = time.time_ns() / 1e6
        if after - before < best["round_trip_ms"]:
            best = {"offset_ms": theirs - (before + after) / 2, "round_trip_ms": after - before}
    return best


async def measure(stack: Stack, pages: list[Page], sid: str, n: int, tag: str) -> list[float]:
    """Publish n records one after the other; each once the previous reached every page.
    Returns one latency per (record, page)."""
    latencies: list[float] = []
    for i in range(n):
        record = LogRecorded(
            service="acquisition",
            panel="acquisition",
            level="info",
            logger="bench",
            text=f"bench {tag} {i} {time.time_ns()}",
            session_id=sid,
        )
        li = f"l-{record.message_id}"
        arrivals = [asyncio.create_task(p.evaluate(ARRIVED, li)) for p in pages]
        # Arm every page before the clock starts. Each Playwright call costs this process a
        # few ms (it inspects the caller's stack) and runs in the event loop that also serves
        # the pages: sent after the record, 50 of them would delay its delivery by 100-200 ms.
        # The round trip below is queued behind the waiters, in this loop and in each page.
        await asyncio.gather(*(p.evaluate("() => 0") for p in pages))
        emitted = time.time_ns() / 1e6
        await stack.bus.publish(record)
        try:
            async with asyncio.timeout(WAIT_S):
                seen = await asyncio.gather(*arrivals)
        except TimeoutError:
            missing = sum(not t.done() for t in arrivals)
            for task in arrivals:
                task.cancel()
            raise RuntimeError(
                f"record {i} not in {missing} of {len(pages)} pages after {WAIT_S} s"
            ) from None
        latencies.extend(float(at) - emitted for at in seen)
    return latencies


async def run(
    n: int, counts: list[int], warmup: int, report_s: float
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    raw: dict[str, list[float]] = {}
    meta: dict[str, Any] = {"pages": {}, "clock": {}}
    with tempfile.TemporaryDirectory(prefix="gp-bench-logs-") as tmp:
        root = Path(tmp)
        async with embedded_stack(
            ui_port=free_port(),
            api_port=free_port(),
            data_root=root / "data",
            database_url=f"sqlite+aiosqlite:///{root / 'gridpilot.db'}",
            acquisition=AcquisitionSettings(report_interval_s=report_s),
        ) as stack:
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
                token = (
                    await api.post(
                        "/api/auth/token",
                        json={"username": "operator", "password": stack.passwords["operator"]},
                    )
                ).json()["access_token"]
                r = await api.post(
                    "/api/sessions",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"name": "bench-logs", "microscope_id": "krios-1", "grids": ["g1"]},
                )
                assert r.status_code == 201, r.text
                sid = str(r.json()["id"])
            path = f"/sessions/{sid}"
            async with async_playwright() as pw:
                browser: Browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    viewport = {"width": 1440, "height": 900}
                    first = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                    pages = [await log_in(first, stack, path)]
                    meta["clock"] = await clock_offset(pages[0])
                    # the login cookie, for the other pages' contexts
                    state = await first.storage_state()
                    for count in counts:
                        t = time.perf_counter()
                        while len(pages) < count:
                            try:
                                # one context per page: see probe_same_context
                                ctx = await browser.new_context(
                                    viewport=viewport,  # type: ignore[arg-type]
                                    storage_state=state,
                                )
                                pages.append(await open_page(ctx, f"{stack.ui_url}{path}"))
                            except Exception as exc:
                                log.warning("could not open page %d: %s", len(pages) + 1, exc)
                                break
                        opened = len(pages)
                        meta["pages"][str(count)] = {
                            "asked": count,
                            "opened": opened,
                            "open_s": round(time.perf_counter() - t, 1),
                        }
                        # each page has its own time origin: check every page's clock
                        offsets = [await clock_offset(p, tries=3) for p in pages]
                        meta["pages"][str(count)]["clock_offsets_ms"] = [
                            round(o["offset_ms"], 2) for o in offsets
                        ]
                        log.info("%d page(s) open; warming up", opened)
                        await measure(stack, pages, sid, warmup, f"warm{count}")
                        t = time.perf_counter()
                        raw[str(count)] = await measure(stack, pages, sid, n, f"p{count}")
                        log.info(
                            "%d page(s): %d records in %.1f s",
                            opened,
                            n,
                            time.perf_counter() - t,
                        )
                    for page in pages[1:]:
                        await page.context.close()
                    pages = pages[:1]
                    probe = await browser.new_context(
                        viewport=viewport,  # type: ignore[arg-type]
                        storage_state=state,
                    )
                    meta["same_context"] = await probe_same_context(probe, f"{stack.ui_url}{path}")
                    await probe.close()
                finally:
                    await browser.close()
    return raw, meta


async def main() -> int:
    parser = common.base_parser(__doc__, default_n=100)
    parser.add_argument("--pages", default="1,50", help="page counts, in increasing order")
    parser.add_argument(
        "--report-interval-s",
        type=float,
        default=5.0,
        help="how often the microscopes report (each report re-renders every page's disk panel)",
    )
    args = parser.parse_args()
    n = args.n or (10 if args.quick else 100)
    counts = sorted({int(c) for c in args.pages.split(",")})
    if args.quick and args.pages == "1,50":
        counts = [1, 10]
    system_log = common.redirect_stderr("logs")
    common.quiet_logging(log)
    log.info("logs of the system under test go to %s", system_log)
    async with asyncio.timeout(BUDGET_S):
        raw, meta = await run(n, counts, warmup=3, report_s=args.report_interval_s)
    meta["report_interval_s"] = args.report_interval_s
    rows = []
    for count in counts:
        opened = meta["pages"][str(count)]["opened"]
        label = f"emit → <li> in DOM, {opened} page{'s' if opened > 1 else ''}"
        rows.append(common.row(label, raw[str(count)], TARGET_MS))
    clock = meta["clock"]
    common.print_table(
        f"log latency, {n} records per row, latency per (record, page) (ms, wall clock)", rows
    )
    same = meta["same_context"]
    print(
        f"  pages of one browser context with a live stream: {same['opened_with_stream']} "
        f"of {same['asked']} asked ({same['error'] or 'no error'})"
    )
    spread = [o for c in counts for o in meta["pages"][str(c)]["clock_offsets_ms"]]
    print(
        f"  browser clock − python clock: {clock['offset_ms']:+.2f} ms "
        f"(± {clock['round_trip_ms'] / 2:.2f} ms); every page: {min(spread):+.2f} … "
        f"{max(spread):+.2f} ms; not subtracted"
    )
    path = common.write_json(
        "logs",
        common.clean(rows),
        raw,
        {"n": n, "target_p95_ms": TARGET_MS, "cpus": os.cpu_count(), **meta},
    )
    print(f"\nwrote {path}")
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    common.run_main(main, "logs")
