"""Prometheus metrics of session-api (names per docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
            "Deliveries handled",
            ["queue", "outcome"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            f"gridpilot_{service}_bus_handler_seconds",
            "Handler latency",
            ["queue"],
            registry=registry,
        )

    def published(self, exchange: str) -> None:
        self.published_total.labels(exchange).inc()

    def handled(self, queue: str, outcome: Outcome, seconds: float) -> None:
        queue = "transient" if queue.startswith("transient.") else queue
        self.handled_total.labels(queue, outcome).inc()
        self.handler_seconds.labels(queue).observe(seconds)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.bus = BusMetrics("session_api", registry)
        self.run_state = Gauge(
            "gridpilot_session_api_run_state",
            "1 for the current run state of each microscope",
            ["microscope", "state"],
            registry=registry,
        )
        self.exposures_per_hour = Gauge(
            "gridpilot_session_api_exposures_per_hour",
            "Exposures per hour",
            ["microscope"],
            registry=registry,
        )
        self.lease_held = Gauge(
            "gridpilot_session_api_lease_held",
            "1 while the microscope's lease is held",
            ["microscope"],
            registry=registry,
        )
        self.heartbeat_age = Gauge(
            "gridpilot_session_api_heartbeat_age_seconds",
            "Age of the live run's heartbeat",
            ["microscope"],
            registry=registry,
        )
        self.last_exposure = Gauge(
            "gridpilot_session_api_last_exposure_timestamp_seconds",
            "When the microscope's last exposure was taken",
            ["microscope"],
            registry=registry,
        )
