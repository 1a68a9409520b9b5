"""The message base class and the registry from routing key to model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

REGISTRY: dict[str, type[Message]] = {}
"""Every concrete message class by its routing key (log records by their exchange)."""


class Message(BaseModel):
    """A frozen message that knows where it goes.

    Consumers ignore unknown fields (rolling deploys); changes are additive; a breaking change
    is a new class with a new routing key.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    exchange: ClassVar[str]
    routing_key: ClassVar[str]

    schema_version: int = 1
    message_id: UUID = Field(default_factory=uuid4)
    run_id: UUID | None = None
    sent_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        key = cls.__dict__.get("routing_key")
        if isinstance(key, str):
            if key in REGISTRY and REGISTRY[key] is not cls:
                raise TypeError(f"routing key {key!r} used by {REGISTRY[key]} and {cls}")
            REGISTRY[key] = cls

    def key(self) -> str:
        """The routing key of this instance (log records vary it by service and level)."""
        return self.routing_key


class RunMessage(Message):
    """A message about one run: ``run_id`` is required."""

    run_id: UUID


def model_for(routing_key: str) -> type[Message] | None:
    """The registered model for a routing key, or ``None`` for an unknown (newer) one."""
    return REGISTRY.get(routing_key)
