"""Fixtures of the run-control scenarios: the system on both buses and both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest

from proto.bus.memory import MemoryBus
from proto.lease.memory import MemoryLeases
from session_api.settings import NotifySettings
from support.broker import require_rabbitmq
from support.database import fresh_database
from support.system import System, running_system

SYSTEMS = [
    pytest.param(("memory", "sqlite"), id="memory-sqlite"),
    pytest.param(("amqp", "sqlite"), id="amqp-sqlite", marks=pytest.mark.rabbitmq),
    pytest.param(("memory", "postgres"), id="memory-postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=SYSTEMS)
async def system(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[System]:
    kind, db = request.param
    faults = getattr(request, "param_faults", {})
    marker = request.node.get_closest_marker("faults")
    if marker is not None:
        faults = marker.kwargs
    notify = request.node.get_closest_marker("notify")
    if notify is not None:
        faults = {**faults, "notify": NotifySettings(**notify.kwargs)}
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
