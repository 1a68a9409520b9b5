"""Prometheus metrics of acquisition (names per docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from acquisition.supervisor import Supervisor
from proto import messages as m
from proto.bus.base import Bus, Subscription
from proto.observe import BusMetrics, ProcessCollector
from proto.topology import EVENTS, transient_queue


class AcquisitionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.supervisor: Supervisor | None = None
        registry.register(ProcessCollector("acquisition"))
        self.bus = BusMetrics("acquisition", registry)
        labels = ["volume"]
        self.free = Gauge(
            "gridpilot_acquisition_disk_free_bytes", "Free bytes", labels, registry=registry
        )
        self.used = Gauge(
            "gridpilot_acquisition_disk_used_bytes", "Used bytes", labels, registry=registry
        )
        self.size = Gauge(
            "gridpilot_acquisition_disk_size_bytes", "Volume size", labels, registry=registry
        )
        self.exposures = Counter(
            "gridpilot_acquisition_exposures", "Exposures taken", ["microscope"], registry=registry
        )
        self.lease_held = Gauge(
            "gridpilot_acquisition_lease_held",
            "1 while a run holds the lease",
            ["microscope"],
            registry=registry,
        )

    def watch(self, supervisor: Supervisor) -> None:
        """Disk from the supervisor's reports; every scope's series exist from the start."""
        supervisor.reported.append(self.on_report)
        self.supervisor = supervisor
        for scope in supervisor.scopes:
            self.exposures.labels(scope)
            self.lease_held.labels(scope).set(0)

    async def follow(self, bus: Bus) -> Subscription:
        """Count exposures and lease changes of this service's runs from their events: runs
        live in child processes, which publish but keep no metrics of their own."""
        spec = transient_queue("acquisition.metrics", EVENTS, ("exposure.acquired", "lease.*"))
        return await bus.subscribe(spec, m.Message, self.on_event)

    def on_report(self, report: m.MicroscopeReported) -> None:
        for v in report.volumes:
            name = f"{report.microscope_id}:{v.name}"
            self.free.labels(name).set(v.free_bytes)
            self.used.labels(name).set(v.total_bytes - v.free_bytes)
            self.size.labels(name).set(v.total_bytes)

    async def on_event(self, message: m.Message) -> None:
        scopes = self.supervisor.scopes if self.supervisor else {}
        if isinstance(message, m.ExposureAcquired):
            scope = self.supervisor.microscope_of(message.run_id) if self.supervisor else None
            if scope is not None:
                self.exposures.labels(scope).inc()
        elif isinstance(message, m.LeaseGranted):
            if message.holder.microscope_id in scopes:
                self.lease_held.labels(message.holder.microscope_id).set(1)
        elif isinstance(message, m.LeaseReleased | m.LeaseLost):
            if message.holder.microscope_id in scopes:
                self.lease_held.labels(message.holder.microscope_id).set(0)
