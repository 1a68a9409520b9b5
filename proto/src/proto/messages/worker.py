"""Service processes announce that they are alive (for the operations page)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from proto.messages.base import Message
from proto.topology import EVENTS


class WorkerHeartbeat(Message):
    """A worker process (acquisition, processing, …) is alive; sent every ``interval_s``."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "worker.heartbeat_sent"

    service: str = Field(min_length=1, max_length=32)
    instance: str = Field(min_length=1, max_length=128)
    """``<host>:<pid>``: one per process, stable for its life."""
    host: str
    pid: int = Field(ge=0)
    started_at: datetime
    interval_s: float = Field(gt=0)
    handled: int = Field(0, ge=0)
    """Messages this process has handled so far (all its consumers)."""
