"""The lease on RabbitMQ: an exclusive, auto-delete queue ``lease.microscope.<id>``.

Declared on a dedicated, plain (never robust) connection with a short heartbeat whose name
carries the holder. Declaring it is acquiring it (atomic in the broker: a second declarer gets
RESOURCE_LOCKED); closing the connection releases it; the broker releases it by itself when the
holder dies or hangs. The holder is also written into the queue's arguments, which the
management API shows at once (connection details lag by the statistics interval).
Force release closes the holder's connection through the management API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import aio_pika
import aiormq
import httpx
from aio_pika.abc import AbstractConnection

from proto.errors import BusUnavailable, LeaseBusy
from proto.lease.base import mark_lost
from proto.messages.lease import LeaseHolder
from proto.settings import AmqpSettings
from proto.topology import lease_queue

log = logging.getLogger(__name__)

HOLDER_ARG = "x-gridpilot-holder"


class AmqpLease:
    """A held lease: its connection is the lock."""

    def __init__(self, holder: LeaseHolder, connection: AbstractConnection) -> None:
        self.holder = holder
        self.lost = asyncio.Event()
        self._reasons: list[str] = []
        self._connection = connection
        self._released = False
        connection.close_callbacks.add(self._on_close)

    @property
    def lost_reason(self) -> str | None:
        return self._reasons[0] if self._reasons else None

    def _on_close(self, _conn: object, exc: BaseException | None = None) -> None:
        if not self._released:
            why = f"{exc}" if exc else "connection closed"
            log.warning("lease of microscope %s lost: %s", self.holder.microscope_id, why)
            mark_lost(self.lost, self._reasons, f"lease connection closed: {why}")

    def _on_cancel(self, _tag: object) -> None:
        if not self._released:
            mark_lost(self.lost, self._reasons, "lease queue was deleted")

    async def release(self) -> None:
        self._released = True
        if not self._connection.is_closed:
            with contextlib.suppress(Exception):
                await self._connection.close()


class AmqpLeases:
    """A :class:`proto.lease.base.LeaseManager` on RabbitMQ and its management API."""

    def __init__(self, settings: AmqpSettings, namespace: str | None = None) -> None:
        self.settings = settings
        self.namespace = settings.namespace if namespace is None else namespace

    def queue_name(self, microscope_id: str) -> str:
        base = lease_queue(microscope_id)
        return f"{self.namespace}.{base}" if self.namespace else base

    async def acquire(self, holder: LeaseHolder) -> AmqpLease:
        try:
            connection = await aio_pika.connect(
                self.settings.url.get_secret_value(),
                client_properties={"connection_name": holder.connection_name()},
                heartbeat=self.settings.lease_heartbeat,
            )
        except (OSError, aiormq.exceptions.AMQPError) as exc:
            raise BusUnavailable(f"cannot reach RabbitMQ for the lease: {exc!r}") from exc
        try:
            channel = await connection.channel(publisher_confirms=False)
            queue = await channel.declare_queue(
                self.queue_name(holder.microscope_id),
                exclusive=True,
                auto_delete=True,
                arguments={HOLDER_ARG: holder.model_dump_json()},
            )
        except aiormq.exceptions.ChannelLockedResource:
            await connection.close()
            raise LeaseBusy(holder.microscope_id, await self.holder(holder.microscope_id)) from None
        except BaseException:
            await connection.close()
            raise
        lease = AmqpLease(holder, connection)
        # A consumer on our own queue hears the broker cancel it if the queue is deleted.
        underlay = await channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(lease._on_cancel)
        await queue.consume(_ignore, no_ack=True)
        return lease

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.settings.management_url,
            auth=self.settings.credentials,
            timeout=5.0,
        )

    def _queue_path(self, microscope_id: str) -> str:
        vhost = quote(self.settings.vhost, safe="")
        return f"/api/queues/{vhost}/{quote(self.queue_name(microscope_id), safe='')}"

    async def _queue_info(self, client: httpx.AsyncClient, microscope_id: str) -> Any:
        try:
            response = await client.get(self._queue_path(microscope_id))
        except httpx.HTTPError as exc:
            raise BusUnavailable(f"RabbitMQ management API unreachable: {exc!r}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise BusUnavailable(f"RabbitMQ management API answered {response.status_code}")
        return response.json()

    async def holder(self, microscope_id: str) -> LeaseHolder | None:
        async with self._client() as client:
            info = await self._queue_info(client, microscope_id)
        return None if info is None else _holder_of(info, microscope_id)

    async def force_release(
        self, microscope_id: str, *, by: str, timeout: float = 15.0
    ) -> LeaseHolder | None:
        """Close the holder's connection through the management API and wait until it is gone.

        The owner's connection shows up in the management API only after the broker's
        statistics interval (5 s by default), so this polls for it within ``timeout``.

        Raises:
            TimeoutError: the lease still exists after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        async with self._client() as client:
            info = await self._queue_info(client, microscope_id)
            if info is None:
                return None
            holder = _holder_of(info, microscope_id)
            while info is not None:
                owner = (info.get("owner_pid_details") or {}).get("name")
                if owner:
                    await client.delete(
                        f"/api/connections/{quote(owner, safe='')}",
                        headers={"X-Reason": f"gridpilot: lease force-released by {by}"},
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"lease of microscope {microscope_id} not released")
                await asyncio.sleep(0.1)  # polling the management API, not waiting on an event
                info = await self._queue_info(client, microscope_id)
        log.warning("lease of microscope %s force-released by %s", microscope_id, by)
        return holder


async def _ignore(_message: object) -> None:
    return None


def _holder_of(info: Any, microscope_id: str) -> LeaseHolder:
    raw = (info.get("arguments") or {}).get(HOLDER_ARG)
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            return LeaseHolder.model_validate(json.loads(raw))
    return LeaseHolder(microscope_id=microscope_id, session_name="unknown")
