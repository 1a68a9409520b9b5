"""FastAPI dependencies: the settings, the database session, the bus and the leases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from proto.bus.base import Bus
from proto.lease.base import LeaseManager
from session_api.settings import ApiSettings


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as db:
        try:
            yield db
            await db.commit()
        except BaseException:
            await db.rollback()
            raise


def get_bus(request: Request) -> Bus:
    bus: Bus | None = getattr(request.app.state, "bus", None)
    if bus is None:
        raise HTTPException(503, "the message bus is not connected")
    return bus


def get_leases(request: Request) -> LeaseManager:
    leases: LeaseManager = request.app.state.leases
    return leases


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
DbDep = Annotated[AsyncSession, Depends(get_db)]
BusDep = Annotated[Bus, Depends(get_bus)]
LeasesDep = Annotated[LeaseManager, Depends(get_leases)]
