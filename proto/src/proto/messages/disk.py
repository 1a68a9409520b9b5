"""Microscopes and their data volumes, as the acquisition side reports them."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from proto.messages.base import Message
from proto.topology import EVENTS


class VolumeStatus(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    path: str
    total_bytes: int = Field(ge=0)
    free_bytes: int = Field(ge=0)
    warning_fraction: float = 0.15
    critical_fraction: float = 0.05

    @property
    def used_fraction(self) -> float:
        return 0.0 if self.total_bytes == 0 else 1 - self.free_bytes / self.total_bytes

    @property
    def level(self) -> str:
        """``ok``, ``warning`` or ``critical`` by the free fraction."""
        free = 1 - self.used_fraction
        if free <= self.critical_fraction:
            return "critical"
        return "warning" if free <= self.warning_fraction else "ok"


class MicroscopeReported(Message):
    """Acquisition announces a microscope it drives, with its data volumes (every few s)."""

    exchange: ClassVar[str] = EVENTS
    routing_key: ClassVar[str] = "microscope.reported"

    microscope_id: str
    name: str
    driver: str
    volumes: tuple[VolumeStatus, ...]
    bytes_per_hour: float = 0.0
    """Bytes written per hour over the last minutes, for the hours-left forecast."""
