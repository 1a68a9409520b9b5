"""session-api's word that an event is now in the database.

Pages re-read state from session-api when they hear this, never on the raw event (which
may arrive before session-api has committed it).
"""

from __future__ import annotations

from typing import Any, ClassVar

from proto.messages.base import Message, model_for
from proto.topology import EVENTS


class StateProjected(Message):
    """The event ``source`` (of type ``source_type``) has been projected and committed."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "state.projected"

    source_type: str
    source: dict[str, Any]

    @classmethod
    def of(cls, event: Message) -> StateProjected:
        return cls(
            run_id=event.run_id,
            source_type=event.routing_key,
            source=event.model_dump(mode="json"),
        )

    def original(self) -> Message | None:
        """The projected event as its own model (``None`` for a type this reader lacks)."""
        model = model_for(self.source_type)
        return model.model_validate(self.source) if model else None
