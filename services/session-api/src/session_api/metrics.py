"""Prometheus metrics of session-api (names per docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from proto.bus.base import QueueStats
from proto.observe import BusMetrics, ProcessCollector


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        registry.register(ProcessCollector("session_api"))
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
        self.queue_messages = Gauge(
            "gridpilot_session_api_queue_messages",
            "Messages waiting in each Gridpilot queue",
            ["queue"],
            registry=registry,
        )
        self.queue_consumers = Gauge(
            "gridpilot_session_api_queue_consumers",
            "Consumers on each Gridpilot queue",
            ["queue"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "gridpilot_session_api_dead_letters",
            "Messages in each dead-letter queue",
            ["queue"],
            registry=registry,
        )

        self.notifications = Counter(
            "gridpilot_session_api_notifications_total",
            "Notification messages sent or failed, and notices dropped after the last retry",
            ["outcome"],
            registry=registry,
        )
        self.notify_events_dropped = Counter(
            "gridpilot_session_api_notify_events_dropped_total",
            "Projected events the notifier had no room for (its queue was full)",
            registry=registry,
        )
        self.retired = Counter(
            "gridpilot_session_api_retained_rows_total",
            "Rows retention archived (if it keeps that kind) and deleted",
            ["kind"],
            registry=registry,
        )
        self.retention_round = Gauge(
            "gridpilot_session_api_retention_round_timestamp_seconds",
            "When the last retention round finished",
            registry=registry,
        )

    def queues(self, stats: list[QueueStats]) -> None:
        for s in stats:
            if s.queue.startswith("dlq."):
                self.dead_letters.labels(s.queue).set(s.messages)
            else:
                self.queue_messages.labels(s.queue).set(s.messages)
                self.queue_consumers.labels(s.queue).set(s.consumers)
