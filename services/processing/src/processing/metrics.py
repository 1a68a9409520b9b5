"""Prometheus metrics of processing (names per docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from proto.observe import BusMetrics, ProcessCollector


class ProcessingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        registry.register(ProcessCollector("processing"))
        self.bus = BusMetrics("processing", registry)
        self.images = Counter(
            "gridpilot_processing_images",
            "Images processed",
            ["kind", "outcome"],
            registry=registry,
        )
        for kind in ("exposure", "atlas", "square"):
            for outcome in ("ok", "corrupt", "failed"):
                self.images.labels(kind, outcome)  # 0 until it happens, not absent
        self.latency = Histogram(
            "gridpilot_processing_latency_seconds",
            "From the image's acquisition to its result",
            ["kind"],
            buckets=(0.5, 1, 2, 4, 6, 8, 12, 20, 30, 60, 120, 300),
            registry=registry,
        )
        self.backlog = Gauge(
            "gridpilot_processing_backlog_messages",
            "Messages waiting in the processing queues, as this worker last saw them",
            ["queue"],
            registry=registry,
        )
        for queue in ("processing.images", "processing.finders"):
            self.backlog.labels(queue)

    def done(self, kind: str, outcome: str, seconds: float | None) -> None:
        self.images.labels(kind, outcome).inc()
        if seconds is not None:
            self.latency.labels(kind).observe(seconds)
