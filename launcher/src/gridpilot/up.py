"""``gridpilot up``: the four services as separate processes against RabbitMQ and a database.

Each service is ``python -m <package>`` with its environment; a random secret is shared by
session-api and ui unless ``GRIDPILOT_SECRET_KEY`` is set. Ctrl-C stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from pathlib import Path

SERVICES = ("session_api", "acquisition", "processing", "ui")


def environment(root: Path, ui_port: int, api_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    env.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{root / 'gridpilot.db'}")
    env.setdefault("GRIDPILOT_SECRET_KEY", secrets.token_urlsafe(32))
    env.setdefault("ACQUISITION_DATA_ROOT", str(root / "data"))
    env.setdefault("PROCESSING_DATA_ROOT", str(root / "data"))
    env.setdefault("SESSION_API_DATA_ROOTS", f'["{root / "data"}"]')
    env["SESSION_API_PORT"] = str(api_port)
    env["UI_PORT"] = str(ui_port)
    env.setdefault("SESSION_API_URL", f"http://127.0.0.1:{api_port}")
    return env


async def wait_ready(url: str, timeout: float = 60) -> None:
    import httpx

    async with httpx.AsyncClient() as client, asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)  # polling another process's readiness probe


async def start_all(env: dict[str, str]) -> list[asyncio.subprocess.Process]:
    procs = []
    for pkg in SERVICES:
        procs.append(await asyncio.create_subprocess_exec(sys.executable, "-m", pkg, env=env))
        if pkg == "session_api":
            await wait_ready(f"http://127.0.0.1:{env['SESSION_API_PORT']}/readyz")
    await wait_ready(f"http://127.0.0.1:{env['UI_PORT']}/readyz")
    return procs


async def stop_all(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in reversed(procs):
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()


async def run_up(root: Path, ui_port: int, api_port: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    env = environment(root, ui_port, api_port)
    procs = await start_all(env)
    print(  # noqa: T201
        f"Gridpilot is up: ui http://127.0.0.1:{ui_port}  session-api http://127.0.0.1:{api_port}/docs\n"
        f"  broker {env['AMQP_URL'].rsplit('@', 1)[-1]}  database {env['DATABASE_URL'].split('://')[0]}\n"
        "  add users with `gridpilot users add NAME --role ROLE`; Ctrl-C stops everything.",
        flush=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    waiters = [asyncio.create_task(p.wait()) for p in procs]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
    await stop_all(procs)
