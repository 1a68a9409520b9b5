"""The in-process lease registry, used with ``MemoryBus`` in the embedded mode and tests."""

from __future__ import annotations

import asyncio

from proto.errors import LeaseBusy
from proto.lease.base import mark_lost
from proto.messages.lease import LeaseHolder


class MemoryLease:
    def __init__(self, registry: MemoryLeases, holder: LeaseHolder) -> None:
        self.holder = holder
        self.lost = asyncio.Event()
        self._reasons: list[str] = []
        self._registry = registry

    @property
    def lost_reason(self) -> str | None:
        return self._reasons[0] if self._reasons else None

    async def release(self) -> None:
        self._registry._drop(self)

    def _lose(self, reason: str) -> None:
        self._registry._drop(self)
        mark_lost(self.lost, self._reasons, reason)


class MemoryLeases:
    """An in-memory :class:`proto.lease.base.LeaseManager` (acquire is atomic in one loop)."""

    def __init__(self) -> None:
        self._held: dict[str, MemoryLease] = {}

    async def acquire(self, holder: LeaseHolder) -> MemoryLease:
        current = self._held.get(holder.microscope_id)
        if current is not None:
            raise LeaseBusy(holder.microscope_id, current.holder)
        lease = self._held[holder.microscope_id] = MemoryLease(self, holder)
        return lease

    async def holder(self, microscope_id: str) -> LeaseHolder | None:
        lease = self._held.get(microscope_id)
        return lease.holder if lease else None

    async def force_release(self, microscope_id: str, *, by: str) -> LeaseHolder | None:
        lease = self._held.get(microscope_id)
        if lease is None:
            return None
        lease._lose(f"lease force-released by {by}")
        return lease.holder

    def drop_process(self, microscope_id: str, reason: str) -> None:
        """What the broker does when a holder process dies: the lease goes at once."""
        lease = self._held.get(microscope_id)
        if lease is not None:
            lease._lose(reason)

    def _drop(self, lease: MemoryLease) -> None:
        if self._held.get(lease.holder.microscope_id) is lease:
            del self._held[lease.holder.microscope_id]
