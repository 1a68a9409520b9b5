"""Log records as events on ``screening.logs`` (key ``<service>.<level>``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from proto.messages.base import Message
from proto.topology import LOGS

Panel = Literal["acquisition", "processing", "system"]
Level = Literal["debug", "info", "warning", "error", "critical"]


class LogRecorded(Message):
    """One log record. ``run_id`` ties it to a run's log panels; ``seq`` orders a producer's."""

    exchange: ClassVar[str] = LOGS
    routing_key: ClassVar[str] = "log.recorded"

    service: str
    panel: Panel
    level: Level
    logger: str
    text: str
    session_id: str | None = None
    microscope_id: str | None = None

    def key(self) -> str:
        return f"{self.service}.{self.level}"
