"""Waiting inside a run: every wait ends early when a stop arrives or the lease is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class StopRequested(Exception):
    """The operator asked for a soft stop; the run ends ``stopped``."""


class LeaseGone(Exception):
    """The lease is gone; the run must not drive the scope any more and ends ``lost``."""


class SkipGrid(Exception):
    """The operator chose *next grid* while the run was paused inside a grid."""


class TargetSkipped(Exception):
    """The operator skipped the target being acquired; raised at the next safe point."""


async def interruptible(
    awaitable: Awaitable[T],
    *,
    stop: asyncio.Event,
    lost: asyncio.Event,
    timeout: float | None = None,
    skip: asyncio.Event | None = None,
) -> T:
    """Await ``awaitable`` unless ``stop``, ``lost`` (or ``skip``) is set first.

    Raises:
        LeaseGone: ``lost`` was set (checked first: losing the lease outranks a stop).
        StopRequested: ``stop`` was set.
        TargetSkipped: ``skip`` was set (the target being acquired is skipped).
        TimeoutError: ``timeout`` seconds passed.
    """
    task = asyncio.ensure_future(awaitable)
    events = (stop, lost) if skip is None else (stop, lost, skip)
    watchers = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(
            {task, *watchers}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for w in watchers:
            w.cancel()
    if lost.is_set():
        task.cancel()
        raise LeaseGone()
    if stop.is_set():
        task.cancel()
        raise StopRequested()
    if skip is not None and skip.is_set():
        task.cancel()
        raise TargetSkipped()
    if task in done:
        return task.result()
    task.cancel()
    raise TimeoutError()
