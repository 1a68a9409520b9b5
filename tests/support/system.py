"""The system under test: session-api, acquisition and processing on one bus.

On the memory bus runs are tasks; on RabbitMQ each run is a real child process in its own
process group (the deployment form), with its own broker connections and lease.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from acquisition.config import MicroscopeConfig
from acquisition.driver import Microscope
from acquisition.service import attach as attach_acquisition
from acquisition.service import build_scopes, reporting
from acquisition.settings import AcquisitionSettings
from acquisition.simulator import Faults, SimulatorSettings
from processing.service import attach as attach_processing
from processing.settings import ProcessingSettings
from proto import messages as m
from proto.bus.base import Bus
from proto.bus.loghandler import BusLogHandler
from proto.heartbeat import heartbeats
from proto.lease.base import LeaseManager
from session_api.app import create_app
from session_api.auth import add_user
from session_api.settings import ApiSettings, NotifySettings
from support.fake_serialem import MODULE_PATH, SHARE_WINDOWS, FakeSerialEM

T = TypeVar("T", bound=m.Message)
PASSWORD = "correct horse battery"
ROLES = ("viewer", "operator", "staff")

HEARTBEAT_S = 1.0
"""Worker heartbeats in tests: fast, so a test can watch one arrive."""

SYSTEMS = [
    pytest.param(("memory", "sqlite"), id="memory-sqlite"),
    pytest.param(("amqp", "sqlite"), id="amqp-sqlite", marks=pytest.mark.rabbitmq),
    pytest.param(("memory", "postgres"), id="memory-postgres", marks=pytest.mark.postgres),
]
"""Bus and database of the ``system`` fixture (``tests/scenarios/conftest.py``)."""

WITH_SERIALEM = [
    *SYSTEMS,
    pytest.param(
        ("amqp", "sqlite", "serialem"), id="amqp-sqlite-serialem", marks=pytest.mark.rabbitmq
    ),
]
"""The same, plus krios-1 driven through the SerialEM driver on its stand-in — in the
deployment's form (each run a child process), on one bus and database: the driver does not
change with them. The run-control scenarios run on these."""


def hold_file(data_root: Path, scope_id: str) -> Path:
    """The gate that holds ``scope_id``'s exposures while it exists (see ``Faults.hold_file``)."""
    return data_root.parent / f"hold-{scope_id}"


def fast_scope(scope_id: str, name: str, **faults: Any) -> MicroscopeConfig:
    return MicroscopeConfig(
        id=scope_id,
        name=name,
        simulator=SimulatorSettings(
            seed=5,
            speed=5000,
            atlas_px=1024,
            square_px=768,
            movie_px=256,
            frames=4,
            faults=Faults(**faults),
        ),
    )


def fast_settings(**faults: Any) -> SimulatorSettings:
    """The simulated physics of the tests: small images, 5000 times faster than a scope."""
    return fast_scope("x", "x", **faults).simulator


def serialem_scope(scope_id: str, name: str, sem: FakeSerialEM) -> MicroscopeConfig:
    """A scope driven through SerialEM (the stand-in module, talking to ``sem``).

    A test cannot fill the disk the share is on; for the simulator's ``disk_free_fraction``
    fault the share's thresholds are set to 100 %, so it reads critically low."""
    low = sem.scope.settings.faults.disk_free_fraction is not None
    return MicroscopeConfig.model_validate(
        {
            "id": scope_id,
            "name": name,
            "driver": "serialem",
            "serialem": {
                "host": "127.0.0.1",
                "port": sem.port,
                "timeout_s": 30,
                "frames_timeout_s": 30,
                "module_path": str(MODULE_PATH),
            },
            "paths": {
                "windows_path": SHARE_WINDOWS,
                "scope_path": str(sem.share),
                "warning_free_fraction": 1.0 if low else 0.15,
                "critical_free_fraction": 1.0 if low else 0.05,
            },
        }
    )


def acquisition_settings(
    data_root: Path, mode: str, serialem: FakeSerialEM | None = None, **faults: Any
) -> AcquisitionSettings:
    """Two scopes, krios-1 (with the faults; through SerialEM when ``serialem`` is given) and
    krios-2."""
    first = (
        serialem_scope("krios-1", "Krios 1", serialem)
        if serialem is not None
        else fast_scope("krios-1", "Krios 1", hold_file=hold_file(data_root, "krios-1"), **faults)
    )
    return AcquisitionSettings(
        data_root=data_root,
        run_mode=mode,  # type: ignore[arg-type]
        microscopes=[
            first,
            fast_scope("krios-2", "Krios 2", hold_file=hold_file(data_root, "krios-2")),
        ],
        squares_per_grid=2,
        holes_per_square=2,
        heartbeat_s=0.5,
        finder_timeout_s=30,
        report_interval_s=1,
    )


@dataclass
class System:
    bus: Bus
    leases: LeaseManager
    api: FastAPI
    scopes: dict[str, Microscope]
    data_root: Path
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    projected: list[m.Message] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_projected(self, message: m.Message) -> None:
        async with self._changed:
            self.projected.append(message)
            self._changed.notify_all()

    async def wait_for(
        self,
        kind: type[T],
        where: Callable[[T], bool] = lambda _m: True,
        *,
        timeout: float = 30,
        after: int = 0,
    ) -> T:
        """The first event of ``kind`` (at index ≥ ``after``) that session-api has committed."""

        def hit() -> T | None:
            for message in self.projected[after:]:
                if isinstance(message, kind) and where(message):
                    return message
            return None

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: hit() is not None)
        found = hit()
        assert found is not None
        return found

    async def ended(self, run_id: uuid.UUID, timeout: float = 60) -> m.RunStateChanged:
        return await self.wait_for(
            m.RunStateChanged, lambda e: e.run_id == run_id and e.state == "ended", timeout=timeout
        )

    async def log_line(self, run_id: uuid.UUID, text: str, timeout: float = 30) -> m.LogRecorded:
        """The first stored log record of ``run_id`` containing ``text``."""
        return await self.wait_for(
            m.LogRecorded, lambda r: r.run_id == run_id and text in r.text, timeout=timeout
        )

    def mark(self) -> int:
        return len(self.projected)

    def hold(self, scope_id: str = "krios-1") -> None:
        """From now on ``scope_id``'s next exposure waits, mid-acquisition, until
        :meth:`release` (the run is past its last safe point: a stop cannot cut it short)."""
        hold_file(self.data_root, scope_id).touch()

    def release(self, scope_id: str = "krios-1") -> None:
        hold_file(self.data_root, scope_id).unlink(missing_ok=True)

    async def held(self, scope_id: str = "krios-1", timeout: float = 30) -> None:
        """Until ``scope_id``'s run waits at the gate :meth:`hold` set."""
        gate = hold_file(self.data_root, scope_id)
        await until_exists(gate.with_name(gate.name + ".held"), timeout)

    async def session(
        self, name: str = "alpha", microscope: str = "krios-1", grids: int = 2, pause: bool = False
    ) -> dict[str, Any]:
        r = await self.clients["operator"].post(
            "/api/sessions",
            json={
                "name": name,
                "microscope_id": microscope,
                "grids": [f"{name}-g{i}" for i in range(1, grids + 1)],
                "pause_between_grids": pause,
            },
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def start(self, session_id: str, role: str = "operator") -> uuid.UUID:
        r = await self.clients[role].post(f"/api/sessions/{session_id}/start")
        assert r.status_code == 202, r.text
        return uuid.UUID(r.json()["run_id"])


async def until_exists(path: Path, timeout: float) -> None:
    """Until ``path`` exists (written by another process: there is no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not path.exists():
            await asyncio.sleep(0.01)


@contextmanager
def bus_logs(bus: Bus) -> Iterator[None]:
    """The acquisition and processing loggers publish to the bus, as in the services."""
    handlers = []
    for name in ("acquisition", "processing"):
        handler = BusLogHandler(bus, service=name, panel=name)
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
        handlers.append((name, handler))
    try:
        yield
    finally:
        for name, handler in handlers:
            logging.getLogger(name).removeHandler(handler)
            handler.close()


@asynccontextmanager
async def running_system(
    bus: Bus,
    leases: LeaseManager,
    tmp: Path,
    database_url: str,
    *,
    mode: str,
    notify: NotifySettings | None = None,
    serialem: FakeSerialEM | None = None,
    **faults: Any,
) -> AsyncIterator[System]:
    """The system on ``bus``; krios-1 through SerialEM when ``serialem`` (a fake SerialEM,
    started, carrying the faults itself) is given."""
    acq = acquisition_settings(tmp / "data", mode, serialem, **faults)
    scopes = build_scopes(acq)
    supervisor = attach_acquisition(bus, acq, leases, scopes)
    attach_processing(bus, ProcessingSettings(data_root=tmp / "data"))
    api = create_app(
        ApiSettings(
            database_url=database_url,
            data_roots=[tmp / "data", *([serialem.share] if serialem else [])],
            heartbeat_timeout_s=5,
            reconcile_interval_s=0.5,
            notify=notify or NotifySettings(),
        ),
        bus=bus,
        leases=leases,
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(bus)  # type: ignore[arg-type]
        # the services' loggers publish to the bus (in process mode each run's child also
        # publishes its own run's lines)
        stack.enter_context(bus_logs(bus))
        await stack.enter_async_context(api.router.lifespan_context(api))
        system = System(bus, leases, api, scopes, tmp / "data")
        api.state.projector.listeners.append(system.on_projected)
        async with api.state.sessionmaker() as db:
            for role in ROLES:
                await add_user(db, role, role, PASSWORD)  # type: ignore[arg-type]
            await db.commit()
        transport = httpx.ASGITransport(app=api)
        for role in ROLES:
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://api")
            )
            token = (
                await client.post("/api/auth/token", json={"username": role, "password": PASSWORD})
            ).json()
            client.headers["Authorization"] = f"Bearer {token['access_token']}"
            system.clients[role] = client
        system.clients["anonymous"] = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://api")
        )
        await stack.enter_async_context(reporting(supervisor, acq.report_interval_s))
        for name in ("acquisition", "processing"):
            await stack.enter_async_context(
                heartbeats(bus, name, interval_s=HEARTBEAT_S, instance=f"test/{name}")
            )
        await system.wait_for(m.MicroscopeReported, lambda e: e.microscope_id == "krios-2")
        yield system
