"""Prometheus metrics of acquisition (names per docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from acquisition.supervisor import Supervisor
from proto import messages as m
from proto.observe import BusMetrics, ProcessCollector


class AcquisitionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
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
        supervisor.reported.append(self.on_report)

    def on_report(self, report: m.MicroscopeReported) -> None:
        for v in report.volumes:
            name = f"{report.microscope_id}:{v.name}"
            self.free.labels(name).set(v.free_bytes)
            self.used.labels(name).set(v.total_bytes - v.free_bytes)
            self.size.labels(name).set(v.total_bytes)

    def on_event(self, message: m.Message) -> None:
        if isinstance(message, m.ExposureAcquired):
            return
        if isinstance(message, m.LeaseGranted):
            self.lease_held.labels(message.holder.microscope_id).set(1)
        elif isinstance(message, m.LeaseReleased | m.LeaseLost):
            self.lease_held.labels(message.holder.microscope_id).set(0)
