"""Wiring processing onto a bus: the finders and the exposure worker."""

from __future__ import annotations

from processing.handlers import Handlers
from processing.metrics import ProcessingMetrics
from processing.settings import ProcessingSettings
from proto import messages as m
from proto.bus.base import Bus
from proto.topology import PROCESSING_FINDERS, PROCESSING_IMAGES


def attach(
    bus: Bus, settings: ProcessingSettings, metrics: ProcessingMetrics | None = None
) -> Handlers:
    """Register the processing consumers on ``bus`` (before it is entered)."""
    handlers = Handlers(bus, settings, metrics)
    bus.on(PROCESSING_FINDERS, m.Message, handlers.finders)
    bus.on(PROCESSING_IMAGES, m.ExposureAcquired, handlers.exposure)
    return handlers
