"""Prometheus metrics every service shares: bus counts and its own process.

Names follow ``gridpilot_<service>_<thing>_<unit>`` (docs/metrics.md); no per-run labels.
Needs the ``proto[amqp]`` extra (prometheus-client, psutil).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import get_args

import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from proto.bus.base import Outcome


class BusMetrics:
    """A :class:`proto.bus.base.BusObserver` that counts into Prometheus."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.published_total = Counter(
            f"gridpilot_{service}_bus_published",
            "Messages published",
            ["exchange"],
            registry=registry,
        )
        self.handled_total = Counter(
            f"gridpilot_{service}_bus_handled",
            "Deliveries handled, by outcome",
            ["queue", "outcome"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            f"gridpilot_{service}_bus_handler_seconds",
            "Handler latency",
            ["queue"],
            registry=registry,
        )
        self._queues: set[str] = set()

    def published(self, exchange: str) -> None:
        self.published_total.labels(_unprefixed(exchange)).inc()

    def handled(self, queue: str, outcome: Outcome, seconds: float) -> None:
        queue = "transient" if queue.startswith("transient.") else queue
        if queue not in self._queues:
            # Every outcome of a queue exists (0) from its first delivery on, so a rate of
            # retries or dead letters reads 0 rather than no data until the first one.
            self._queues.add(queue)
            for each in get_args(Outcome):
                self.handled_total.labels(queue, each)
        self.handled_total.labels(queue, outcome).inc()
        self.handler_seconds.labels(queue).observe(seconds)


def _unprefixed(name: str) -> str:
    return name[name.index("screening.") :] if "screening." in name else name


class ProcessCollector(Collector):
    """CPU seconds, resident memory, open files and a liveness timestamp of this process."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.process = psutil.Process()

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self.service
        with self.process.oneshot():
            cpu = self.process.cpu_times()
            memory = self.process.memory_info().rss
            try:
                files = len(self.process.open_files())
            except psutil.Error:
                files = 0
        yield CounterMetricFamily(
            f"gridpilot_{s}_process_cpu_seconds",
            "CPU time of the process",
            value=cpu.user + cpu.system,
        )
        yield GaugeMetricFamily(
            f"gridpilot_{s}_process_memory_bytes", "Resident memory", value=memory
        )
        yield GaugeMetricFamily(f"gridpilot_{s}_process_open_files", "Open files", value=files)
        yield GaugeMetricFamily(
            f"gridpilot_{s}_heartbeat_timestamp_seconds",
            "When the service last answered",
            value=time.time(),
        )
