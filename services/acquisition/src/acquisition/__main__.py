"""``python -m acquisition``: the supervisor on RabbitMQ; each run a child process."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from acquisition.metrics import AcquisitionMetrics
from acquisition.service import attach, reporting
from acquisition.settings import AcquisitionSettings
from proto.bus.amqp import AmqpBus
from proto.bus.loghandler import BusLogHandler
from proto.health import HealthServer
from proto.settings import AmqpSettings


async def main() -> None:
    settings = AcquisitionSettings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    registry = CollectorRegistry()
    metrics = AcquisitionMetrics(registry)
    bus = AmqpBus(AmqpSettings(), service="acquisition", observer=metrics.bus)
    supervisor = attach(bus, settings.model_copy(update={"run_mode": "process"}))
    metrics.watch(supervisor)
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
        logging.getLogger("acquisition").addHandler(
            BusLogHandler(bus, service="acquisition", panel="acquisition")
        )
        async with reporting(supervisor, settings.report_interval_s):
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
