"""``gridpilot demo``: the embedded stack with demo users and two demo sessions."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from fastapi import FastAPI

from gridpilot.embedded import Stack, embedded_stack
from session_api.db.models import Grid, Session

DEMO_SESSIONS = (
    ("Apoferritin screening", "krios-1", ["apo-01", "apo-02", "apo-03"]),
    ("Membrane protein MP-7", "glacios-1", ["mp7-a", "mp7-b"]),
)


async def seed_sessions(api: FastAPI) -> None:
    """Two sessions to start from, unless the database has some already."""
    from sqlalchemy import select

    async with api.state.sessionmaker() as db:
        if (await db.scalars(select(Session))).first() is not None:
            return
        for name, microscope, grids in DEMO_SESSIONS:
            session = Session(name=name, microscope_id=microscope, created_by="operator")
            db.add(session)
            await db.flush()
            for position, grid in enumerate(grids, start=1):
                db.add(Grid(session_id=session.id, name=grid, position=position))
        await db.commit()


def banner(stack: Stack) -> str:
    users = "\n".join(f"    {role:9} password {pw}" for role, pw in stack.passwords.items())
    return (
        f"\nGridpilot demo is up: open {stack.ui_url}\n"
        f"  session-api {stack.api_url}/docs\n"
        f"  users (log in with the role as user name):\n{users}\n"
        "  Ctrl-C stops it.\n"
    )


async def run_demo(root: Path, ui_port: int, api_port: int) -> None:
    logging.basicConfig(level=os.environ.get("GRIDPILOT_LOG_LEVEL", "WARNING"))
    root.mkdir(parents=True, exist_ok=True)
    async with embedded_stack(
        ui_port=ui_port,
        api_port=api_port,
        data_root=root / "data",
        database_url=f"sqlite+aiosqlite:///{root / 'gridpilot.db'}",
        freeze_heap=True,
    ) as stack:
        await seed_sessions(stack.api)
        print(banner(stack), flush=True)  # noqa: T201 - the demo talks to its user
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
