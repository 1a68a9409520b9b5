"""acquisition's exposure and lease metrics follow its runs' events (runs are child
processes that keep no metrics of their own)."""

from __future__ import annotations

from uuid import uuid4

from prometheus_client import CollectorRegistry

from acquisition.metrics import AcquisitionMetrics
from acquisition.service import build_scopes
from acquisition.settings import AcquisitionSettings
from acquisition.supervisor import Supervisor
from proto import messages as m
from proto.bus.memory import MemoryBus


def exposure(run_id: object) -> m.ExposureAcquired:
    return m.ExposureAcquired(
        run_id=run_id,  # type: ignore[arg-type]
        grid_id=uuid4(),
        hole_id=uuid4(),
        exposure_id=uuid4(),
        movie=m.ImageRef(path="/data/x.mrc", pixel_size_a=1.0, shape=(10, 64, 64)),
        n_frames=10,
        dose_e_per_a2=40,
    )


async def test_counts_only_its_own_runs_and_tracks_the_lease() -> None:
    registry = CollectorRegistry()
    metrics = AcquisitionMetrics(registry)
    async with MemoryBus() as bus:
        supervisor = Supervisor(bus, build_scopes(AcquisitionSettings()))
        metrics.watch(supervisor)
        scope = next(iter(supervisor.scopes))

        def value(name: str) -> float | None:
            return registry.get_sample_value(name, {"microscope": scope})

        assert value("gridpilot_acquisition_exposures_total") == 0
        assert value("gridpilot_acquisition_lease_held") == 0
        await metrics.follow(bus)
        mine = m.StartRun(
            run_id=uuid4(),
            session_id=uuid4(),
            session_name="s",
            microscope_id=scope,
            grids=(),
            requested_by="op",
        )
        supervisor._starts[mine.run_id] = mine  # as _start records it
        holder = m.LeaseHolder(microscope_id=scope, run_id=mine.run_id)

        await bus.publish(m.LeaseGranted(holder=holder))
        await bus.publish(exposure(mine.run_id))
        await bus.publish(exposure(mine.run_id))
        await bus.publish(exposure(uuid4()))  # another service's run
        await bus.drain()
        assert value("gridpilot_acquisition_exposures_total") == 2
        assert value("gridpilot_acquisition_lease_held") == 1

        await bus.publish(m.LeaseReleased(holder=holder))
        await bus.drain()
        assert value("gridpilot_acquisition_lease_held") == 0
