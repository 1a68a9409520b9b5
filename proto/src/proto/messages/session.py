"""Changes session-api makes to a session's record itself, not by projecting another event."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from proto.messages.base import Message
from proto.topology import EVENTS


class SessionChanged(Message):
    """session-api committed a control's change to a session or its run that no other event
    carries: a run row created ``starting``, a stop requested, the pause-between-grids
    toggle set (also with no live run). Pages re-read the session when they hear it."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "session.changed"

    session_id: UUID
    microscope_id: str
    change: str
    requested_by: str
