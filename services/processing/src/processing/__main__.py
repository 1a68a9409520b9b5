"""``python -m processing``: a competing worker on RabbitMQ (scale it out freely)."""

from __future__ import annotations

import os

# A worker runs one job at a time with PROCESSING_FFT_THREADS threads, beside other workers
# on the same machine. BLAS and OpenMP would otherwise start a thread per core for the small
# matrix products of the CTF fit and the alignment (OpenBLAS threads spin while they wait:
# measured 2.3–3.2 CPU-s per CTF fit with 2 BLAS threads, 0.5 s with one). The libraries
# read these once, when numpy loads, so they are set before anything imports it.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, os.environ.get("PROCESSING_FFT_THREADS", "1"))

import asyncio  # noqa: E402
import logging  # noqa: E402

from prometheus_client import CollectorRegistry  # noqa: E402

from processing.backlog import watching_backlog  # noqa: E402
from processing.metrics import ProcessingMetrics  # noqa: E402
from processing.service import attach  # noqa: E402
from processing.settings import ProcessingSettings  # noqa: E402
from proto.bus.amqp import AmqpBus  # noqa: E402
from proto.bus.loghandler import BusLogHandler  # noqa: E402
from proto.health import configure_logging, stop_signal, worker_probes  # noqa: E402
from proto.heartbeat import CountingObserver, heartbeats  # noqa: E402
from proto.settings import AmqpSettings  # noqa: E402


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
