"""Through the SerialEM driver only: SerialEM vanishing mid-run ends the run ``failed`` with the
reason and frees the microscope (the run is a child process, its SerialEM bridge another)."""

from __future__ import annotations

import pytest

from proto import messages as m
from support.system import WITH_SERIALEM, System

SERIALEM = [p for p in WITH_SERIALEM if p.id == "amqp-sqlite-serialem"]


@pytest.mark.parametrize("system", SERIALEM, indirect=True)
@pytest.mark.faults(disconnect_after_exposures=1)
async def test_serialem_vanishing_mid_run_fails_the_run_and_frees_the_lease(
    system: System,
) -> None:
    session = await system.session("vanish", grids=1)
    run_id = await system.start(session["id"])
    await system.wait_for(m.ExposureAcquired, lambda e: e.run_id == run_id)
    ended = await system.ended(run_id)
    assert ended.exit_reason == "failed"
    assert "lost SerialEM at 127.0.0.1" in (ended.detail or "")
    await system.wait_for(m.LeaseReleased, lambda e: e.run_id == run_id)
    holder = await system.leases.holder("krios-1")
    assert holder is None or holder.run_id != run_id
    await system.log_line(run_id, "the microscope failed: lost SerialEM")
