"""The embedded stack: all four services in one process on the in-memory bus with SQLite.

Runs execute as tasks of this process (the in-memory bus cannot cross processes); force-kill
cancels the task at once and drops the in-memory lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from acquisition.driver import Microscope
from acquisition.service import attach as attach_acquisition
from acquisition.service import build_scopes, reporting
from acquisition.settings import AcquisitionSettings
from processing.service import attach as attach_processing
from processing.settings import ProcessingSettings
from proto.bus.loghandler import BusLogHandler
from proto.bus.memory import MemoryBus
from proto.heartbeat import CountingObserver, heartbeats
from proto.lease.memory import MemoryLeases
from session_api.app import create_app as create_api
from session_api.auth import add_user
from session_api.db.models import Microscope as MicroscopeRow
from session_api.settings import ApiSettings, NotifySettings
from ui.app import create_app as create_ui
from ui.server import Server as UiServer
from ui.settings import UiSettings

ROLES = ("viewer", "operator", "staff")


@dataclass
class Stack:
    """What a running embedded stack offers its caller (the demo, the browser tests)."""

    ui_url: str
    api_url: str
    bus: MemoryBus
    leases: MemoryLeases
    scopes: dict[str, Microscope]
    api: FastAPI
    passwords: dict[str, str] = field(default_factory=dict)


async def _serve(
    app: FastAPI, host: str, port: int, *, ui: bool = False
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    # log_config=None: uvicorn must not run dictConfig, which closes the bus log handlers.
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, log_level="warning", timeout_graceful_shutdown=1
    )
    server = UiServer(config, app) if ui else uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError(f"could not serve on {host}:{port}")
        await asyncio.sleep(0.02)  # uvicorn offers no event for "started"
    return server, task


@asynccontextmanager
async def embedded_stack(
    *,
    host: str = "127.0.0.1",
    ui_port: int = 8000,
    api_port: int = 8001,
    data_root: Path = Path("var/data"),
    database_url: str = "sqlite+aiosqlite:///var/gridpilot.db",
    acquisition: AcquisitionSettings | None = None,
    passwords: dict[str, str] | None = None,
    notify: NotifySettings | None = None,
    freeze_heap: bool = False,
) -> AsyncIterator[Stack]:
    """Serve the whole system on ``ui_port`` (pages) and ``api_port`` (session-api).
    Notifications link to the pages here unless ``notify`` says another ``base_url``."""
    secret = SecretStr(secrets.token_urlsafe(32))
    acq = (acquisition or AcquisitionSettings()).model_copy(
        update={"run_mode": "task", "data_root": data_root}
    )
    counter = CountingObserver()
    bus, leases = MemoryBus(observer=counter), MemoryLeases()
    scopes = build_scopes(acq)
    supervisor = attach_acquisition(bus, acq, leases, scopes)
    attach_processing(bus, ProcessingSettings(data_root=data_root))
    api = create_api(
        ApiSettings(
            host=host,
            port=api_port,
            database_url=database_url,
            secret_key=secret,
            data_roots=[data_root],
            notify=_notify_settings(notify, f"http://{host}:{ui_port}"),
        ),
        bus=bus,
        leases=leases,
        freeze_heap=freeze_heap,
    )
    ui = create_ui(
        UiSettings(
            host=host, port=ui_port, session_api_url=f"http://{host}:{api_port}", secret_key=secret
        ),
        bus=bus,
        freeze_heap=freeze_heap,
    )
    handlers = []
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(bus)
        for name in ("acquisition", "processing"):
            handler = BusLogHandler(bus, service=name, panel=name)
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
            handlers.append((name, handler))
        servers = [await _serve(api, host, api_port), await _serve(ui, host, ui_port, ui=True)]
        await stack.enter_async_context(reporting(supervisor, acq.report_interval_s))
        for name in ("acquisition", "processing"):
            await stack.enter_async_context(
                heartbeats(
                    bus,
                    name,
                    interval_s=acq.worker_heartbeat_s,
                    counter=counter,
                    instance=f"{socket.gethostname()}:{os.getpid()}/{name}",
                )
            )
        result = Stack(
            f"http://{host}:{ui_port}", f"http://{host}:{api_port}", bus, leases, scopes, api
        )
        result.passwords = await _seed(
            api, bus, passwords or {r: secrets.token_urlsafe(9) for r in ROLES}
        )
        try:
            yield result
        finally:
            for server, task in reversed(servers):
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await task
            for name, handler in handlers:
                logging.getLogger(name).removeHandler(handler)
                handler.close()


def _notify_settings(given: NotifySettings | None, ui_url: str) -> NotifySettings:
    settings = given or NotifySettings()
    if settings.base_url is None:
        settings = settings.model_copy(update={"base_url": ui_url})
    return settings


async def _seed(api: FastAPI, bus: MemoryBus, passwords: dict[str, str]) -> dict[str, str]:
    """One user per role (named after the role), once the microscopes' first report is in."""
    async with api.state.sessionmaker() as db:
        for role, password in passwords.items():
            await add_user(db, role, role, password)  # type: ignore[arg-type]
        await db.commit()
    await bus.drain()
    async with api.state.sessionmaker() as db:
        if (await db.scalars(select(MicroscopeRow))).first() is None:
            raise RuntimeError("no microscope reported itself; is acquisition configured?")
    return passwords
