"""Prometheus metrics of the ui service and the bus observer that feeds them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from proto.bus.base import Outcome
from proto.topology import COMMANDS, EVENTS, LOGS

SSE_STREAMS = Gauge("gridpilot_ui_sse_streams", "Open server-sent-event streams")
SSE_EVENTS = Counter(
    "gridpilot_ui_sse_events_total", "Server-sent events written to browsers", ["kind"]
)
SSE_OVERFLOWS = Counter(
    "gridpilot_ui_sse_overflows_total", "Streams that fell behind the bus and resynchronised"
)
BUS_PUBLISHED = Counter(
    "gridpilot_ui_bus_published_total", "Messages published on the bus", ["exchange"]
)
for _exchange in (COMMANDS, EVENTS, LOGS):  # the ui publishes nothing today: a true zero
    BUS_PUBLISHED.labels(exchange=_exchange)
BUS_HANDLED = Counter(
    "gridpilot_ui_bus_handled_total", "Bus deliveries handled, by outcome", ["queue", "outcome"]
)
BUS_HANDLER_SECONDS = Histogram(
    "gridpilot_ui_bus_handler_seconds", "Bus handler latency", ["queue"]
)
API_ERRORS = Counter(
    "gridpilot_ui_api_errors_total", "Failed calls to session-api, by status", ["status"]
)


def _queue_label(queue: str) -> str:
    # transient.ui.<uuid> would make one series per page: fold it (no per-stream labels).
    return "transient.ui" if "transient.ui." in queue else queue


class UiBusObserver:
    """A :class:`proto.bus.base.BusObserver` that counts into the metrics above."""

    def published(self, exchange: str) -> None:
        BUS_PUBLISHED.labels(exchange=exchange).inc()

    def handled(self, queue: str, outcome: Outcome, seconds: float) -> None:
        label = _queue_label(queue)
        BUS_HANDLED.labels(queue=label, outcome=outcome).inc()
        BUS_HANDLER_SECONDS.labels(queue=label).observe(seconds)
