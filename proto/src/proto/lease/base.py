"""The microscope lease (the scope lock), as one protocol with two implementations.

Holding the lease is the only permission to drive a microscope. It is never re-acquired
silently: once :attr:`HeldLease.lost` is set the holder must stop driving the scope at the next
safe point and end its run ``lost``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from proto.messages.lease import LeaseHolder


class HeldLease(Protocol):
    """A lease this process holds."""

    holder: LeaseHolder
    lost: asyncio.Event
    """Set when the lease is gone without :meth:`release` (forced, broker closed, heartbeat)."""

    @property
    def lost_reason(self) -> str | None: ...

    async def release(self) -> None:
        """Give the lease up (idempotent)."""
        ...


class LeaseManager(Protocol):
    """Acquire, inspect and force-release microscope leases."""

    async def acquire(self, holder: LeaseHolder) -> HeldLease:
        """Take the lease of ``holder.microscope_id`` now, without waiting.

        Raises:
            LeaseBusy: somebody holds it; ``.holder`` names them where known.
            BusUnavailable: the broker cannot be reached.
        """
        ...

    async def holder(self, microscope_id: str) -> LeaseHolder | None:
        """Who holds the lease now, or ``None`` when it is free."""
        ...

    async def force_release(self, microscope_id: str, *, by: str) -> LeaseHolder | None:
        """Take the lease away from its holder; returns who held it (``None``: was free)."""
        ...


def mark_lost(event: asyncio.Event, reasons: list[str], reason: str) -> None:
    """Record the first reason a lease was lost and wake its watchers."""
    if not event.is_set():
        reasons.append(reason)
        event.set()
