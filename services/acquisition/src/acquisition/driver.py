"""The microscope driver interface: what the run loop asks of a microscope.

A driver for a real scope (SerialEM's Python interface, say) implements :class:`Microscope`;
the simulated microscope in :mod:`acquisition.simulator` ships. Every method may take real
time; none may be called without holding the microscope's lease (the run loop makes sure).
Coordinates are pixels of the parent image: squares on the grid's atlas, holes on the square's
image; the driver maps them to stage positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from proto.errors import PermanentError, TransientError
from proto.messages import Detector, GridSpec, ImageRef, Optics, Target, VolumeStatus


class DriverError(TransientError):
    """The microscope refused or failed an operation (stage error, lost connection).

    ``fatal`` says the run cannot go on with this scope (the connection is gone, or the data
    it writes cannot be reached); otherwise only the current target failed."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class DiskFull(PermanentError):
    """A data volume has no room for the next file."""


def no_checkpoint() -> None:
    """A driver's checkpoint while no run has set one: everything may go on."""


@dataclass(frozen=True)
class AcquiredMovie:
    """An exposure written to disk."""

    path: Path
    n_frames: int
    dose_e_per_a2: float
    pixel_size_a: float
    shape: tuple[int, int, int]


class Microscope(Protocol):
    """One microscope, driven by one run at a time."""

    id: str
    name: str
    driver: str
    optics: Optics
    """The scope's optics (from its configuration); every exposure carries them."""
    detector: Detector
    """The camera exposures are recorded on, and how it writes frames."""

    @property
    def connected(self) -> bool:
        """Whether the connection is up; a ``DriverError`` while it is down ends the run."""
        ...

    checkpoint: Callable[[], None]
    """Called by the driver between the scope commands of one operation, before it starts
    anything that moves or exposes (never in the middle of an exposure); the run sets it to
    raise when a stop arrived or the lease is gone. A no-op until a run sets it."""

    async def connect(self) -> None:
        """Open the connection to the scope. Raises ``DriverError``."""
        ...

    async def disconnect(self) -> None:
        """Close the connection (idempotent, never raises)."""
        ...

    async def load_grid(self, grid: GridSpec) -> None:
        """Load ``grid`` from the cassette onto the stage."""
        ...

    async def atlas(self, grid: GridSpec, out_dir: Path) -> ImageRef:
        """Take the whole-grid montage; returns the MRC (and a PNG preview) written."""
        ...

    async def move_stage(self, target: Target) -> None:
        """Move to a square (on the atlas) or a hole (on its square's image)."""
        ...

    async def image_square(self, grid: GridSpec, square: Target, out_dir: Path) -> ImageRef:
        """Image the square the stage is at."""
        ...

    async def expose(self, grid: GridSpec, hole: Target, out_dir: Path) -> AcquiredMovie:
        """Record a movie of the hole the stage is at. Raises ``DiskFull``."""
        ...

    def volumes(self) -> list[VolumeStatus]:
        """The data volumes this scope writes to, with their free space now."""
        ...
