"""Prometheus metrics of processing (names per docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
        self.latency = Histogram(
            "gridpilot_processing_latency_seconds",
            "From the image's acquisition to its result",
            ["kind"],
            buckets=(0.5, 1, 2, 4, 6, 8, 12, 20, 30, 60, 120, 300),
            registry=registry,
        )

    def done(self, kind: str, outcome: str, seconds: float | None) -> None:
        self.images.labels(kind, outcome).inc()
        if seconds is not None:
            self.latency.labels(kind).observe(seconds)
