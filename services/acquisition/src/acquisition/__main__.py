"""``python -m acquisition``: the supervisor on RabbitMQ; each run a child process."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from acquisition.config import ConfigError
from acquisition.metrics import AcquisitionMetrics
from acquisition.service import attach, reporting
from acquisition.settings import AcquisitionSettings
from proto.bus.amqp import AmqpBus
from proto.bus.loghandler import BusLogHandler
from proto.health import configure_logging, stop_signal, worker_probes
from proto.heartbeat import CountingObserver, heartbeats
from proto.settings import AmqpSettings


async def main() -> None:
    try:
        settings = AcquisitionSettings()
    except ConfigError as exc:
        raise SystemExit(f"acquisition: {exc}") from None
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    metrics = AcquisitionMetrics(registry)
    counter = CountingObserver(metrics.bus)
    bus = AmqpBus(AmqpSettings(), service="acquisition", observer=counter)
    supervisor = attach(bus, settings.model_copy(update={"run_mode": "process"}))
    metrics.watch(supervisor)
    stop = stop_signal()
    async with worker_probes(settings.metrics_host, settings.metrics_port, bus, registry), bus:
        await metrics.follow(bus)
        handler = BusLogHandler(bus, service="acquisition", panel="acquisition")
        logging.getLogger("acquisition").addHandler(handler)
        async with (
            reporting(supervisor, settings.report_interval_s),
            heartbeats(bus, "acquisition", interval_s=settings.worker_heartbeat_s, counter=counter),
        ):
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
