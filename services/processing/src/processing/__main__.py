"""``python -m processing``: a competing worker on RabbitMQ (scale it out freely)."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from processing.metrics import ProcessingMetrics
from processing.service import attach
from processing.settings import ProcessingSettings
from proto.bus.amqp import AmqpBus
from proto.bus.loghandler import BusLogHandler
from proto.health import HealthServer
from proto.settings import AmqpSettings


async def main() -> None:
    settings = ProcessingSettings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    registry = CollectorRegistry()
    metrics = ProcessingMetrics(registry)
    amqp = AmqpSettings()
    # CPU-bound jobs: take one message at a time per worker unless told otherwise.
    bus = AmqpBus(
        amqp.model_copy(update={"prefetch": 1}), service="processing", observer=metrics.bus
    )
    attach(bus, settings, metrics)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    health = HealthServer(
        settings.metrics_host,
        settings.metrics_port,
        ready=lambda: bus.connected,
        metrics=lambda: (CONTENT_TYPE_LATEST, generate_latest(registry)),
    )
    async with health, bus:
        logging.getLogger("processing").addHandler(
            BusLogHandler(bus, service="processing", panel="processing")
        )
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
