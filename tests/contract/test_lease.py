"""The lease contract, on the in-memory registry and on RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from uuid import uuid4

import aio_pika
import aiormq
import pytest

from proto.errors import LeaseBusy
from proto.lease.base import LeaseManager
from proto.lease.memory import MemoryLeases
from proto.messages.lease import LeaseHolder
from support.broker import require_rabbitmq

CHILD = Path(__file__).parent.parent / "support" / "lease_child.py"


def holder(mid: str = "krios-1", session: str = "alpha") -> LeaseHolder:
    return LeaseHolder(
        microscope_id=mid,
        session_id=uuid4(),
        session_name=session,
        run_id=uuid4(),
        host="node-a",
        pid=os.getpid(),
    )


async def test_second_acquire_is_busy_and_names_the_holder(leases: LeaseManager) -> None:
    first = holder(session="alpha")
    lease = await leases.acquire(first)
    with pytest.raises(LeaseBusy) as busy:
        await leases.acquire(holder(session="beta"))
    assert busy.value.holder == first
    assert "session alpha" in str(busy.value)
    assert await leases.holder("krios-1") == first
    await lease.release()


async def test_leases_of_different_microscopes_are_independent(leases: LeaseManager) -> None:
    a = await leases.acquire(holder("krios-1"))
    b = await leases.acquire(holder("krios-2"))
    await a.release()
    await b.release()


async def test_release_frees_the_lease(leases: LeaseManager) -> None:
    lease = await leases.acquire(holder())
    await lease.release()
    assert await leases.holder("krios-1") is None
    again = await leases.acquire(holder(session="beta"))
    assert not lease.lost.is_set(), "a clean release is not a loss"
    await again.release()


async def test_force_release_tells_the_holder_and_frees_the_lease(
    leases: LeaseManager,
) -> None:
    first = holder()
    lease = await leases.acquire(first)
    assert await leases.force_release("krios-1", by="staff-sam") == first
    async with asyncio.timeout(5):
        await lease.lost.wait()
    assert lease.lost_reason is not None
    # nobody re-acquired behind our back: the lease stays free until someone asks
    assert await leases.holder("krios-1") is None
    second = await leases.acquire(holder(session="beta"))
    assert not second.lost.is_set()
    await second.release()
    assert await leases.force_release("krios-1", by="staff-sam") is None


async def test_cancelled_embedded_holder_frees_the_lease() -> None:
    """Embedded force-kill cancels the run task; its lease must go with it."""
    leases = MemoryLeases()
    held = asyncio.Event()

    async def run() -> None:
        lease = await leases.acquire(holder())
        try:
            held.set()
            await asyncio.Event().wait()
        finally:
            await lease.release()

    task = asyncio.create_task(run())
    await held.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await (await leases.acquire(holder(session="beta"))).release()


@pytest.mark.rabbitmq
async def test_sigkilled_holder_process_releases_within_a_second() -> None:
    """A real child process holds the lease; SIGKILL frees it for an independent client."""
    from proto.lease.amqp import AmqpLeases

    settings = require_rabbitmq()
    ns = f"t{uuid4().hex[:10]}"
    leases = AmqpLeases(settings, namespace=ns)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        ns,
        "krios-9",
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdout is not None
    async with asyncio.timeout(20):
        assert (await child.stdout.readline()).strip() == b"HELD"
    name = leases.queue_name("krios-9")
    conn = await aio_pika.connect(settings.url.get_secret_value())
    try:
        channel = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelLockedResource):
            await channel.declare_queue(name, exclusive=True, auto_delete=True)
        os.killpg(child.pid, signal.SIGKILL)
        killed = time.monotonic()
        await child.wait()
        async with asyncio.timeout(1.0):
            while True:
                channel = await conn.channel()
                try:
                    await channel.declare_queue(name, exclusive=True, auto_delete=True)
                    break
                except aiormq.exceptions.ChannelLockedResource:
                    continue
        assert time.monotonic() - killed <= 1.0
    finally:
        await conn.close()


@pytest.mark.rabbitmq
async def test_broker_closing_the_connection_is_a_loss_never_a_silent_reacquire() -> None:
    from proto.lease.amqp import AmqpLeases

    settings = require_rabbitmq()
    leases = AmqpLeases(settings, namespace=f"t{uuid4().hex[:10]}")
    lease = await leases.acquire(holder())
    # close the lease connection the way the broker does when it drops a client
    await lease._connection.close(aiormq.exceptions.ConnectionClosed(320, "CONNECTION_FORCED"))
    async with asyncio.timeout(5):
        await lease.lost.wait()
    assert "closed" in (lease.lost_reason or "")
    assert lease._connection.is_closed
    assert await leases.holder("krios-1") is None
    other = await leases.acquire(holder(session="beta"))
    await other.release()
