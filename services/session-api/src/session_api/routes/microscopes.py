"""Microscopes and their leases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from sqlalchemy import select

from proto import messages as m
from proto.api import LeaseReleaseResponse, MicroscopeView
from proto.errors import BusUnavailable
from session_api.audit import AuditDep
from session_api.auth import Staff, Viewer
from session_api.db.models import Microscope
from session_api.deps import BusDep, DbDep, LeasesDep
from session_api.views import holder_view, microscope_view

router = APIRouter(prefix="/api/microscopes", tags=["microscopes"])

MicroscopeId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f/]+$")]
"""A microscope id as the database holds it (``String(64)``, printable)."""


@router.get("")
async def list_microscopes(user: Viewer, db: DbDep) -> list[MicroscopeView]:
    """Every microscope: its run, lease holder, disk, throughput and alerts."""
    rows = (await db.scalars(select(Microscope).order_by(Microscope.id))).all()
    return [await microscope_view(db, row) for row in rows]


@router.post("/{microscope_id}/lease/release", name="remove-lock")
async def release_lease(
    microscope_id: MicroscopeId,
    user: Staff,
    db: DbDep,
    bus: BusDep,
    leases: LeasesDep,
    act: AuditDep,
) -> LeaseReleaseResponse:
    """Force-release the microscope's lease: the holder, if alive, loses it and must stop
    driving the scope at once. Audited (the release happens in the broker: the row is
    committed as soon as its outcome is known, before the event is published)."""
    if await db.get(Microscope, microscope_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no microscope {microscope_id}")
    try:
        holder = await leases.force_release(microscope_id, by=user.username)
    except (BusUnavailable, TimeoutError) as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"could not release the lease: {exc}"
        ) from exc
    await act.commit(
        "ok" if holder else "ok (was free)",
        session_id=holder.session_id if holder else None,
        run_id=holder.run_id if holder else None,
    )
    if holder is not None:
        try:
            await bus.publish(
                m.LeaseReleased(run_id=holder.run_id, holder=holder, forced_by=user.username)
            )
        except BusUnavailable:
            pass  # the release itself happened; the event is informational
    return LeaseReleaseResponse(
        released=holder is not None,
        holder=holder_view(holder.model_dump(mode="json")) if holder else None,
    )
