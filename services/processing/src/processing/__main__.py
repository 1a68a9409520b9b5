"""``python -m processing``: a competing worker on RabbitMQ (scale it out freely)."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from processing.backlog import watching_backlog
from processing.metrics import ProcessingMetrics
from processing.service import attach
from processing.settings import ProcessingSettings
from proto.bus.amqp import AmqpBus
from proto.bus.loghandler import BusLogHandler
from proto.health import configure_logging, stop_signal, worker_probes
from proto.heartbeat import CountingObserver, heartbeats
from proto.settings import AmqpSettings


async def main() -> None:
    settings = ProcessingSettings()
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    metrics = ProcessingMetrics(registry)
    amqp = AmqpSettings()
    # CPU-bound jobs: take one message at a time per worker.
    amqp = amqp.model_copy(update={"prefetch": 1})
    counter = CountingObserver(metrics.bus)
    bus = AmqpBus(amqp, service="processing", observer=counter)
    attach(bus, settings, metrics)
    stop = stop_signal()
    async with (
        worker_probes(settings.metrics_host, settings.metrics_port, bus, registry),
        bus,
        heartbeats(bus, "processing", interval_s=settings.worker_heartbeat_s, counter=counter),
        watching_backlog(bus, metrics, settings.backlog_interval_s),
    ):
        handler = BusLogHandler(bus, service="processing", panel="processing")
        logging.getLogger("processing").addHandler(handler)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
