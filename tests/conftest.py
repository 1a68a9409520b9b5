"""Fixtures every layer shares: a bus and a lease manager, on memory and on RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from proto.bus.base import Bus
from proto.bus.memory import MemoryBus
from proto.lease.base import LeaseManager
from proto.lease.memory import MemoryLeases
from support.broker import require_rabbitmq
from support.observer import RecordingObserver

BUSES = ["memory", pytest.param("amqp", marks=pytest.mark.rabbitmq)]


def namespace() -> str:
    return f"t{uuid4().hex[:10]}"


@pytest.fixture
async def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture(params=BUSES)
async def bus(request: pytest.FixtureRequest, observer: RecordingObserver) -> AsyncIterator[Bus]:
    """The bus under test, on a fresh namespace so tests never collide."""
    ns = namespace()
    if request.param == "memory":
        async with MemoryBus(namespace=ns, observer=observer) as mem:
            yield mem
        return
    from proto.bus.amqp import AmqpBus

    impl = AmqpBus(
        require_rabbitmq(), service="test", namespace=ns, observer=observer, delete_on_exit=True
    )
    async with impl as b:
        yield b


@pytest.fixture(params=BUSES)
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[LeaseManager]:
    """A lease manager on memory or on RabbitMQ (namespaced lease queues)."""
    if request.param == "memory":
        yield MemoryLeases()
        return
    from proto.lease.amqp import AmqpLeases

    yield AmqpLeases(require_rabbitmq(), namespace=namespace())
