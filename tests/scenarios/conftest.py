"""Fixtures of the run-control scenarios: the system on both buses and both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from proto.bus.memory import MemoryBus
from proto.lease.memory import MemoryLeases
from session_api.settings import NotifySettings
from support.broker import require_rabbitmq
from support.database import fresh_database
from support.fake_serialem import FakeSerialEM
from support.system import SYSTEMS, System, fast_settings, hold_file, running_system


@pytest.fixture(params=SYSTEMS)
async def system(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[System]:
    kind, db, *driver = request.param
    faults = getattr(request, "param_faults", {})
    marker = request.node.get_closest_marker("faults")
    if marker is not None:
        faults = marker.kwargs
    extra: dict[str, Any] = {}
    notify = request.node.get_closest_marker("notify")
    if notify is not None:
        extra["notify"] = NotifySettings(**notify.kwargs)
    if driver == ["serialem"]:
        gate = hold_file(tmp_path / "data", "krios-1")  # System.hold holds its Record
        with FakeSerialEM(tmp_path / "serialem", fast_settings(hold_file=gate, **faults)) as sem:
            if faults.get("fail_connect"):
                sem.busy = True
            async with _system(kind, db, tmp_path, {"serialem": sem, **extra}) as s:
                yield s
            assert not sem.failures, f"the fake SerialEM failed: {sem.failures}"
        return
    async with _system(kind, db, tmp_path, {**faults, **extra}) as s:
        yield s


@asynccontextmanager
async def _system(
    kind: str, db: str, tmp_path: Path, faults: dict[str, Any]
) -> AsyncIterator[System]:
    async with fresh_database(db, tmp_path) as url:
        if kind == "memory":
            async with running_system(
                MemoryBus(), MemoryLeases(), tmp_path, url, mode="task", **faults
            ) as s:
                yield s
            return
        from proto.bus.amqp import AmqpBus
        from proto.lease.amqp import AmqpLeases

        ns = f"t{uuid4().hex[:10]}"
        settings = require_rabbitmq().model_copy(update={"namespace": ns})
        bus = AmqpBus(settings, service="test", delete_on_exit=True)
        async with running_system(
            bus, AmqpLeases(settings), tmp_path, url, mode="process", **faults
        ) as s:
            yield s
