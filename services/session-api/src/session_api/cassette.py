"""A session's cassette and microscope as a request gives them, checked: each refusal is a 422
naming the field it is about (``body.grids.2``, ``body.positions``), as FastAPI's own are, so
a form can show it beside the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy.ext.asyncio import AsyncSession

from session_api.db.models import Microscope


def unprocessable(errors: list[dict[str, Any]]) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, errors)


def _error(loc: Sequence[str | int], msg: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": "value_error"}


def cassette(grids: Sequence[str], positions: Sequence[int] | None) -> list[tuple[int, str]]:
    """``(position, name)`` of each grid, in position order (the order a run screens them).

    Raises:
        HTTPException: 422 for a name used twice, a position taken twice, or a number of
            positions that is not the number of grids.
    """
    errors = []
    first: dict[str, int] = {}
    for i, name in enumerate(grids):
        if name in first:
            errors.append(_error(("grids", i), f"grid name {name!r} is used twice"))
        first.setdefault(name, i)
    slots = list(positions) if positions is not None else list(range(1, len(grids) + 1))
    if len(slots) != len(grids):
        errors.append(
            _error(
                ("positions",),
                f"give one position per grid ({len(grids)} grids, {len(slots)} positions)",
            )
        )
    else:
        taken: dict[int, str] = {}
        for i, (slot, name) in enumerate(zip(slots, grids, strict=True)):
            if slot in taken:
                msg = f"cassette position {slot} holds grid {taken[slot]!r} already"
                errors.append(_error(("positions", i), msg))
            taken.setdefault(slot, name)
    if errors:
        raise unprocessable(errors)
    return sorted(zip(slots, grids, strict=True))


async def new_cassette(
    db: AsyncSession, microscope_id: str, grids: Sequence[str], positions: Sequence[int] | None
) -> list[tuple[int, str]]:
    """:func:`cassette`, and the microscope must exist: one 422 names every field at fault."""
    errors: list[dict[str, Any]] = []
    if await db.get(Microscope, microscope_id) is None:
        errors.append(_error(("microscope_id",), f"no microscope {microscope_id!r}"))
    try:
        slots = cassette(grids, positions)
    except HTTPException as exc:
        errors.extend(exc.detail)  # type: ignore[arg-type]  # the list given above
    if errors:
        raise unprocessable(errors)
    return slots
