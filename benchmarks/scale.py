"""Scale: every page and API route, and the projection of every event kind, timed against a
facility's database on PostgreSQL at three sizes (10 k / 100 k / 1 M exposures with ten times as
many log lines, ten microscopes with live runs, one very busy session).

Run ``uv run --frozen python benchmarks/scale.py [--sizes 10000,100000,1000000] [--n N]
[--quick]``; prints the route × size table and the projection latencies and writes
``benchmarks/results/scale.json``. See ``benchmarks/README.md`` (section *scale*).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# benchmarks/ goes last on sys.path: its processing.py must not shadow the processing service
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.append(str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.fix_sys_path()

import httpx  # noqa: E402
import psutil  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from proto import messages as m  # noqa: E402
from proto.bus.memory import MemoryBus  # noqa: E402
from proto.lease.memory import MemoryLeases  # noqa: E402
from proto.states import ExitReason, RunState  # noqa: E402
from session_api.app import create_app as create_api  # noqa: E402
from session_api.auth import add_user  # noqa: E402
from session_api.db.engine import make_engine, migrate  # noqa: E402
from session_api.db.models import Grid, Target  # noqa: E402
from session_api.retention import Policy, retain_once  # noqa: E402
from support.api_app import settings_for  # noqa: E402
from support.database import fresh_database  # noqa: E402
from support.events import Cases  # noqa: E402
from support.facility import Facility, Shape, seed  # noqa: E402
from support.routes import Call, aims, api_reads, ui_pages  # noqa: E402
from ui.app import create_app as create_ui  # noqa: E402
from ui.settings import UiSettings  # noqa: E402

SIZES = (10_000, 100_000, 1_000_000)
ROUTE_P95_MS = 200.0
GROWTH = 1.5
"""A route's p95 at the largest size may be at most this times its p95 at the smallest."""
PROJECTION_P95_MS = 30.0
PASSWORD = "bench-password"
ROLES = ("viewer", "operator", "staff")

log = logging.getLogger("bench.scale")
Ms = list[float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(app: FastAPI, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=600,  # a client idle between rounds must not race a closing socket
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError(f"could not serve on port {port}")
        await asyncio.sleep(0.02)  # uvicorn offers no event for "started"
    return server, task


@dataclass
class Stack:
    api: FastAPI
    api_clients: dict[str, httpx.AsyncClient]
    ui_clients: dict[str, httpx.AsyncClient]


@contextlib.asynccontextmanager
async def served(url: str, tmp: Path) -> AsyncIterator[Stack]:
    """session-api and the ui, each behind its own uvicorn on loopback, on the memory bus."""
    async with contextlib.AsyncExitStack() as stack:
        bus = await stack.enter_async_context(MemoryBus(namespace="scale"))
        # freeze_heap as `python -m session_api` / `python -m ui` do (proto.runtime)
        api = create_api(settings_for(url, tmp), bus=bus, leases=MemoryLeases(), freeze_heap=True)
        api_port, ui_port = free_port(), free_port()
        servers = [await serve(api, api_port)]
        ui = create_ui(
            UiSettings(session_api_url=f"http://127.0.0.1:{api_port}", secret_key="bench"),
            bus,
            freeze_heap=True,
        )
        servers.append(await serve(ui, ui_port))
        try:
            async with api.state.sessionmaker() as db:
                for role in ROLES:
                    await add_user(db, role, role, PASSWORD)  # type: ignore[arg-type]
                await db.commit()
            api_clients, ui_clients = {}, {}
            for role in ROLES:
                c = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=120)
                )
                r = await c.post("/api/auth/token", json={"username": role, "password": PASSWORD})
                c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
                api_clients[role] = c
                u = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{ui_port}", timeout=120)
                )
                r = await u.post("/login", data={"username": role, "password": PASSWORD})
                assert r.status_code == 303, r.text
                ui_clients[role] = u
            yield Stack(api, api_clients, ui_clients)
        finally:
            for server, task in reversed(servers):
                server.should_exit = True
                await task


# --- the state-changing routes ----------------------------------------------------------------


@dataclass
class Controls:
    """Start, stop, pause, queue and create: timed against the busy session or new ones."""

    stack: Stack
    fac: Facility
    hole: uuid.UUID
    n: int = 0

    async def calls(self) -> dict[str, Callable[[], Awaitable[httpx.Response]]]:
        op = self.stack.api_clients["operator"]
        b = f"/api/sessions/{self.fac.busy}"
        state: dict[str, str] = {}

        async def create() -> httpx.Response:
            self.n += 1
            body = {"name": f"bench {self.n}", "microscope_id": self.fac.scopes[3], "grids": ["a"]}
            r = await op.post("/api/sessions", json=body)
            state["sid"] = r.json()["id"]
            return r

        async def start() -> httpx.Response:
            return await op.post(f"/api/sessions/{state['sid']}/start")

        async def stop() -> httpx.Response:
            r = await op.post(f"/api/sessions/{state['sid']}/stop")
            await self._end(uuid.UUID(r.json()["id"]), uuid.UUID(state["sid"]))
            return r

        async def pause() -> httpx.Response:
            return await op.put(f"{b}/pause-between-grids", json={"enabled": self.n % 2 == 0})

        body = {"target_ids": [str(self.hole)]}

        async def queue() -> httpx.Response:
            return await op.post(f"{b}/targets", json=body)

        async def dequeue() -> httpx.Response:
            return await op.request("DELETE", f"{b}/targets", json=body)

        return {
            "POST /api/sessions (create)": create,
            "POST /api/sessions/{new}/start": start,
            "POST /api/sessions/{new}/stop": stop,
            "PUT /api/sessions/{busy}/pause-between-grids": pause,
            "POST /api/sessions/{busy}/targets": queue,
            "DELETE /api/sessions/{busy}/targets": dequeue,
        }

    async def _end(self, run_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """What acquisition would report: the stopped run ended (untimed)."""
        await self.stack.api.state.projector.event(
            m.RunStateChanged(
                run_id=run_id,
                session_id=session_id,
                microscope_id=self.fac.scopes[3],
                state=RunState.ENDED,
                exit_reason=ExitReason.STOPPED,
            )
        )


async def hole_on_screened_grid(stack: Stack, fac: Facility) -> uuid.UUID:
    async with stack.api.state.sessionmaker() as db:
        hole = await db.scalar(
            select(Target.id)
            .join(Grid, Grid.id == Target.grid_id)
            .where(Grid.session_id == fac.busy, Grid.status == "screening", Target.kind == "hole")
            .limit(1)
        )
    assert isinstance(hole, uuid.UUID)
    return hole


# --- timing -----------------------------------------------------------------------------------


async def time_routes(stack: Stack, calls: list[Call], controls: Controls, n: int) -> dict[str, Ms]:
    """``n`` rounds over every route (interleaved, so drift hits them alike); ms each."""
    out: dict[str, Ms] = {}
    actions = await controls.calls()
    for rep in range(n + 1):  # round 0 warms up (imports, first plans, caches)
        for call in calls:
            client = (stack.ui_clients if call.name.startswith("ui ") else stack.api_clients)[
                call.role
            ]
            t0 = time.perf_counter()
            r = await client.get(call.path)
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code != call.status:
                raise RuntimeError(f"{call.name}: {r.status_code} {r.text[:300]}")
            if rep:
                out.setdefault(call.name, []).append(ms)
        for name, action in actions.items():
            t0 = time.perf_counter()
            r = await action()
            ms = (time.perf_counter() - t0) * 1000
            if not r.is_success:
                raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
            if rep:
                out.setdefault(name, []).append(ms)
    return out


DOWNLOADER = """
import json, sys, time, httpx
url, token, times = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(times):
    t0, first, size = time.perf_counter(), 0.0, 0
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as r:
        for chunk in r.iter_bytes():
            first = first or time.perf_counter() - t0
            size += len(chunk)
    print(json.dumps({"first_byte_s": first, "total_s": time.perf_counter() - t0,
                      "bytes": size}), flush=True)
"""
"""A browser downloading the log: another process, as in a deployment (a client in this
process would take the event loop's time that the server's projection needs)."""


async def downloader(stack: Stack, fac: Facility, times: int) -> asyncio.subprocess.Process:
    client = stack.api_clients["viewer"]
    url = f"{str(client.base_url).rstrip('/')}/api/sessions/{fac.busy}/logs?format=text"
    token = client.headers["Authorization"].removeprefix("Bearer ")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", DOWNLOADER, url, token, str(times), stdout=asyncio.subprocess.PIPE
    )


async def download(stack: Stack, fac: Facility) -> dict[str, float]:
    """The busy session's whole log as text, once: time to the first byte, in all, and how
    much this (the server's) process grew meanwhile."""
    proc = psutil.Process()
    base = peak = proc.memory_info().rss
    child = await downloader(stack, fac, 1)
    assert child.stdout is not None
    line = child.stdout.readline()
    reading = asyncio.ensure_future(line)
    while not reading.done():
        peak = max(peak, proc.memory_info().rss)
        await asyncio.wait([reading], timeout=0.05)
    await child.wait()
    got = json.loads(reading.result())
    return {
        "first_byte_s": round(got["first_byte_s"], 3),
        "total_s": round(got["total_s"], 2),
        "mb": round(got["bytes"] / 1e6, 1),
        "mb_per_s": round(got["bytes"] / 1e6 / got["total_s"], 1),
        "rss_growth_mb": round((peak - base) / 1e6, 1),
    }


async def time_projection(stack: Stack, cases: Cases, n: int) -> dict[str, Ms]:
    """``n`` events of every kind, each projected alone (what it needs is prepared first)."""
    projector = stack.api.state.projector
    out: dict[str, Ms] = {}
    for rep in range(n + 1):
        for kind in cases.kinds:
            before, event = await cases.make(kind)
            for e in before:
                await projector.event(e)
            t0 = time.perf_counter()
            if isinstance(event, m.LogRecorded):
                await projector.log_line(event)
            else:
                await projector.event(event)
            if rep:
                out.setdefault(kind, []).append((time.perf_counter() - t0) * 1000)
    return out


async def while_running(
    work: Callable[[asyncio.Event], Coroutine[Any, Any, Any]], measure: Awaitable[dict[str, Ms]]
) -> tuple[dict[str, Ms], Any, bool]:
    """``measure`` while ``work`` runs; whether ``work`` was still running when it ended."""
    stop = asyncio.Event()
    task = asyncio.create_task(work(stop))
    await asyncio.sleep(0.5)  # under way before the first event
    result = await measure
    busy = not task.done()
    stop.set()
    finished, _ = await asyncio.wait([task], timeout=5)
    if not finished:  # retention does not watch ``stop``: it is cut short
        task.cancel()
    try:
        done = await task
    except asyncio.CancelledError:
        done = None
    return result, done, busy


async def downloads(stack: Stack, fac: Facility, stop: asyncio.Event) -> int:
    """Download the busy session's log again and again (another process) until ``stop``;
    the downloads finished."""
    child = await downloader(stack, fac, 1000)
    try:
        await stop.wait()
    finally:
        child.kill()
        out, _ = await child.communicate()
    return len(out.splitlines())


# --- one size ---------------------------------------------------------------------------------


@dataclass
class Measured:
    size: int
    shape: dict[str, Any]
    facility: dict[str, Any]
    routes: dict[str, Ms]
    projection: dict[str, dict[str, Ms]]
    download: dict[str, float]
    retention: dict[str, Any]
    database: dict[str, Any]
    load: dict[str, list[float]] = field(default_factory=dict)


async def measure(size: int, n: int, busy_cap: int, tmp: Path) -> Measured:
    load0 = list(os.getloadavg())
    shape = Shape(exposures=size, sessions=max(200, size // 66), busy_cap=busy_cap)
    async with fresh_database("postgres", tmp) as url:
        engine = make_engine(url)
        await migrate(engine)
        await engine.dispose()
        log.info("seeding %d exposures, %d sessions", shape.exposures, shape.sessions)
        fac = await seed(url.replace("postgresql+asyncpg", "postgresql"), shape)
        log.info("seeded in %.0f s %s: %s", fac.seconds, fac.phases, fac.counts)
        async with served(url, tmp) as stack:
            database = await table_sizes(stack)
            target = await aims(stack.api.state.sessionmaker, fac)
            controls = Controls(stack, fac, await hole_on_screened_grid(stack, fac))
            calls = api_reads(fac, target) + ui_pages(fac, target)
            log.info("timing %d routes × %d", len(calls) + 6, n)
            routes = await time_routes(stack, calls, controls, n)
            log.info("downloading the busy session's log")
            down = await download(stack, fac)
            log.info("download: %s", down)
            cases = Cases(stack.api.state.sessionmaker, fac)
            projection = {"idle": await time_projection(stack, cases, n)}
            log.info("projecting while the log downloads")
            projection["download"], _, _ = await while_running(
                lambda stop: downloads(stack, fac, stop), time_projection(stack, cases, n)
            )
            progress: dict[str, int] = {}
            policy = Policy(archive_dir=tmp / f"archive-{size}")

            async def retire(stop: asyncio.Event) -> Any:
                return await retain_once(
                    stack.api.state.sessionmaker,
                    policy,
                    progress=progress,
                    yield_to=stack.api.state.projector.drain,  # as session-api's own round
                )

            log.info("projecting while retention runs")
            t0 = time.perf_counter()
            projection["retention"], finished, busy = await while_running(
                retire, time_projection(stack, cases, n)
            )
            retention = {
                "seconds": round(time.perf_counter() - t0, 1),
                "rows_deleted": dict(progress),
                "still_running_at_the_end": busy,
                "finished": finished,
            }
    return Measured(
        size=size,
        shape=shape.__dict__,
        facility={
            "counts": fac.counts,
            "seed_s": round(fac.seconds, 1),
            "phases_s": {k: round(v, 1) for k, v in fac.phases.items()},
            "busy_exposures": min(int(size * shape.busy_share), busy_cap),
        },
        routes=routes,
        projection=projection,
        download=down,
        retention=retention,
        database=database,
        load={"start": load0, "end": list(os.getloadavg())},
    )


async def table_sizes(stack: Stack) -> dict[str, Any]:
    """Bytes on disk per table (with its indexes and TOAST) and per row."""
    async with stack.api.state.sessionmaker() as db:
        rows = (
            await db.execute(
                text(
                    "SELECT c.relname, pg_total_relation_size(c.oid), c.reltuples::bigint "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            )
        ).all()
    tables = {
        name: {"bytes": int(b), "rows": int(r), "bytes_per_row": round(b / r) if r > 0 else None}
        for name, b, r in rows
    }
    return {"tables": tables, "total_bytes": sum(int(b) for _, b, _ in rows)}


# --- report -----------------------------------------------------------------------------------


def p95(values: Ms) -> float:
    return common.percentile(values, 95)


def route_table(results: list[Measured]) -> tuple[list[str], bool]:
    sizes = [r.size for r in results]
    head = ["route (p95 ms)", *(f"{s:,}" for s in sizes), "largest/smallest", "pass"]
    lines, ok = [], True
    for name in results[0].routes:
        values = [p95(r.routes[name]) for r in results]
        ratio = values[-1] / values[0] if values[0] > 0 else float("inf")
        passed = values[-1] <= ROUTE_P95_MS and ratio <= GROWTH
        ok &= passed
        lines.append([name, *(f"{v:.1f}" for v in values), f"{ratio:.2f}×", _yes(passed)])
    return _format(head, lines), ok


def projection_table(results: list[Measured]) -> tuple[list[str], bool]:
    scenarios = list(results[0].projection)
    head = ["event (p95 ms)", *(f"{r.size:,} {s}" for r in results for s in scenarios), "pass"]
    lines, ok = [], True
    for kind in results[0].projection["idle"]:
        values = [p95(r.projection[s][kind]) for r in results for s in scenarios]
        passed = max(values) <= PROJECTION_P95_MS
        ok &= passed
        lines.append([kind, *(f"{v:.1f}" for v in values), _yes(passed)])
    return _format(head, lines), ok


def _yes(passed: bool) -> str:
    return "yes" if passed else "NO"


def _format(head: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [
        fmt.format(*head),
        "-" * (sum(widths) + 2 * len(widths)),
        *(fmt.format(*x) for x in lines),
    ]


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="exposures per size")
    parser.add_argument("--n", type=int, default=30, help="repetitions per route and event")
    parser.add_argument("--busy-cap", type=int, default=100_000, help="the busy session's most")
    parser.add_argument("--quick", action="store_true", help="sizes 2 000 and 20 000, n = 10")
    args = parser.parse_args()
    sizes = [2_000, 20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    n = 10 if args.quick else args.n
    common.quiet_logging(log)
    logs = common.redirect_stderr("scale")
    log.info("system logs: %s; uptime load %s", logs, os.getloadavg())
    results = []
    with tempfile.TemporaryDirectory(prefix="gridpilot-scale-") as tmp:
        for size in sizes:
            results.append(await measure(size, n, args.busy_cap, Path(tmp)))
    routes, routes_ok = route_table(results)
    events, events_ok = projection_table(results)
    print("\nScale: pages and routes, p95 by facility size (exposures)")
    print("\n".join(routes))
    print("\nProjection of one event, p95 by size and what runs meanwhile")
    print("\n".join(events))
    print("\nText download of the busy session's log")
    for r in results:
        load = f"load {r.load['start'][0]:.1f} → {r.load['end'][0]:.1f}"
        print(f"  {r.size:>9,}: {r.download}  ({load})")
    print("\nDatabase size")
    for r in results:
        print(f"  {r.size:>9,}: {r.database['total_bytes'] / 1e9:.2f} GB; retention {r.retention}")
    path = write(results, routes_ok and events_ok)
    print(f"\nroutes {_yes(routes_ok)}, projection {_yes(events_ok)}; JSON: {path}")
    return 0 if routes_ok and events_ok else 1


def write(results: list[Measured], ok: bool) -> Path:
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    path = common.RESULTS / "scale.json"
    body = {
        "benchmark": "scale",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "targets": {
            "route_p95_ms": ROUTE_P95_MS,
            "growth": GROWTH,
            "projection_p95_ms": PROJECTION_P95_MS,
        },
        "passed": ok,
        "sizes": [
            {
                **r.__dict__,
                "routes": {k: _stats(v) for k, v in r.routes.items()},
                "projection": {
                    s: {k: _stats(v) for k, v in kinds.items()} for s, kinds in r.projection.items()
                },
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(body, indent=1, default=str) + "\n")
    return path


def _stats(values: Ms) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(common.percentile(values, 50), 2),
        "p95": round(common.percentile(values, 95), 2),
        "max": round(max(values), 2),
    }


if __name__ == "__main__":
    common.run_main(main, "scale")
