"""The microscope lease: who holds it, and the events about it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from proto.messages.base import Message
from proto.topology import EVENTS


class LeaseHolder(BaseModel):
    """Who holds (or asks for) a microscope: carried in the lease connection's name."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    microscope_id: str
    session_id: UUID | None = None
    session_name: str = ""
    run_id: UUID | None = None
    host: str = ""
    pid: int = 0
    acquired_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    def connection_name(self) -> str:
        """The AMQP connection name that carries this holder (``gridpilot-lease `` + JSON)."""
        return "gridpilot-lease " + self.model_dump_json()

    @classmethod
    def from_connection_name(cls, name: str) -> LeaseHolder | None:
        """Parse a name made by :meth:`connection_name`; ``None`` for any other name."""
        prefix = "gridpilot-lease "
        if not name.startswith(prefix):
            return None
        try:
            return cls.model_validate(json.loads(name[len(prefix) :]))
        except (ValueError, ValidationError):
            return None

    def describe(self) -> str:
        """``session <name> (run <id>)``, as the log line about a locked scope says it."""
        run = f" (run {self.run_id})" if self.run_id else ""
        return f"session {self.session_name or self.session_id or 'unknown'}{run}"


class LeaseGranted(Message):
    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "lease.granted"

    holder: LeaseHolder


class LeaseDenied(Message):
    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "lease.denied"

    microscope_id: str
    requester: LeaseHolder
    holder: LeaseHolder | None


class LeaseReleased(Message):
    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "lease.released"

    holder: LeaseHolder
    forced_by: str | None = None


class LeaseLost(Message):
    """The holder lost its lease (forced release, broker closed the connection, heartbeat)."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "lease.lost"

    holder: LeaseHolder
    reason: str
