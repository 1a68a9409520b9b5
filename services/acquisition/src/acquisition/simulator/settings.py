"""The simulated microscope's own knobs: speed, image sizes, dose, faults to inject."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """Faults to inject; all off by default."""

    model_config = ConfigDict(extra="forbid")

    fail_connect: bool = False
    disconnect_after_exposures: int | None = Field(None, ge=0)
    stage_error_every: int | None = Field(None, ge=1)
    truncate_every: int | None = Field(None, ge=1)
    slow_file_s: float = Field(0.0, ge=0)
    disk_free_fraction: float | None = Field(None, ge=0, le=1)
    hold_file: Path | None = None
    """While this file exists, each exposure waits before its movie is written (the run has
    passed its last safe point and is inside the acquisition), and ``<hold_file>.held`` says
    so: a test holds a run mid-exposure for as long as a state must last, across processes."""


class SimulatorSettings(BaseModel):
    """How a simulated microscope behaves (its optics and pixel size are the microscope's)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 7
    speed: float = Field(60.0, gt=0)
    """How many times faster than a real scope."""
    atlas_px: int = Field(1024, ge=256)
    square_px: int = Field(1024, ge=256)
    movie_px: int = Field(512, ge=128)
    frames: int = Field(10, ge=2)
    dose_per_frame: float = Field(1.0, gt=0)
    """e/Å² per frame."""
    mesh: int = 300
    pattern: str = "R1.2/1.3"
    faults: Faults = Field(default_factory=Faults)
