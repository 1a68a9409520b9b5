"""session-api alone on the memory bus, with a client per role: for tests and benchmarks that
seed its database themselves (no acquisition, no processing, no reconciling of seeded runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto.bus.memory import MemoryBus
from proto.lease.memory import MemoryLeases
from session_api.app import create_app
from session_api.auth import add_user
from session_api.settings import ApiSettings

PASSWORD = "correct horse battery"
ROLES = ("viewer", "operator", "staff")


@dataclass
class Api:
    app: FastAPI
    bus: MemoryBus
    clients: dict[str, httpx.AsyncClient]
    tokens: dict[str, str]

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        made: async_sessionmaker[AsyncSession] = self.app.state.sessionmaker
        return made


def settings_for(url: str, tmp: Path) -> ApiSettings:
    """Nothing in the background: seeded live runs are never reconciled ``lost``, retention
    runs only when called."""
    return ApiSettings(
        database_url=url,
        heartbeat_timeout_s=1e6,
        start_timeout_s=1e6,
        reconcile_interval_s=3600,
        retention_interval_s=3600,
        archive_dir=tmp / "archive",
        data_roots=[tmp],
    )


@asynccontextmanager
async def api_app(
    url: str, tmp: Path, passwords: dict[str, str] | None = None
) -> AsyncIterator[Api]:
    """session-api on ``url`` with a user per role (``passwords``: theirs, by role)."""
    passwords = passwords or dict.fromkeys(ROLES, PASSWORD)
    bus = MemoryBus()
    app = create_app(settings_for(url, tmp), bus=bus, leases=MemoryLeases())
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(bus)
        await stack.enter_async_context(app.router.lifespan_context(app))
        async with app.state.sessionmaker() as db:
            for role in ROLES:
                await add_user(db, role, role, passwords[role])  # type: ignore[arg-type]
            await db.commit()
        transport = httpx.ASGITransport(app=app)
        clients, tokens = {}, {}
        for role in ROLES:
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://api")
            )
            body = {"username": role, "password": passwords[role]}
            r = await client.post("/api/auth/token", json=body)
            tokens[role] = r.json()["access_token"]
            client.headers["Authorization"] = f"Bearer {tokens[role]}"
            clients[role] = client
        yield Api(app, bus, clients, tokens)
