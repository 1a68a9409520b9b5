"""Helpers for tests of the SerialEM driver: a fake SerialEM and a configured driver on it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from acquisition.config import MicroscopeConfig
from acquisition.serialem.scope import SerialEMMicroscope
from proto.messages import GridSpec, Target
from support.fake_serialem import MODULE_PATH, SHARE_WINDOWS, FakeSerialEM


def scope_config(sem: FakeSerialEM, **serialem: Any) -> MicroscopeConfig:
    """A microscope on ``sem``'s port, importing the stand-in module, mapping its share."""
    paths = serialem.pop("paths", {})
    return MicroscopeConfig.model_validate(
        {
            "id": "krios-1",
            "name": "Krios 1",
            "driver": "serialem",
            "serialem": {
                "host": "127.0.0.1",
                "port": sem.port,
                "timeout_s": 10,
                "frames_timeout_s": 10,
                "module_path": str(MODULE_PATH),
                **serialem,
            },
            "paths": {"windows_path": SHARE_WINDOWS, "scope_path": str(sem.share), **paths},
        }
    )


def driver(sem: FakeSerialEM, data_root: Path, **serialem: Any) -> SerialEMMicroscope:
    return SerialEMMicroscope(scope_config(sem, **serialem), data_root)


def grid(position: int = 1) -> GridSpec:
    return GridSpec(grid_id=uuid.uuid4(), name=f"g{position}", position=position)


def target(kind: str, grid_id: uuid.UUID, parent: uuid.UUID, x: float, y: float) -> Target:
    return Target(
        target_id=uuid.uuid4(),
        kind=kind,  # type: ignore[arg-type]
        grid_id=grid_id,
        parent_id=parent,
        y=y,
        x=x,
        size_px=10,
        cls="good",
        score=1.0,
    )
