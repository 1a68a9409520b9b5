"""A microscope that exists only in numbers: deterministic for a seed, timed by a speed factor,
with faults that can be injected (disconnect, stage error, slow or truncated file, full disk)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import numpy as np
import numpy.typing as npt

from acquisition.driver import AcquiredMovie, DiskFull, DriverError, no_checkpoint
from acquisition.physics.atlas import simulate_atlas
from acquisition.physics.movie import simulate_movie
from acquisition.physics.mrc import write_simulated_mrc
from acquisition.physics.square import simulate_square
from acquisition.physics.truth import AtlasTruth, SquareImageTruth
from acquisition.simulator.files import truncate, write_preview
from proto.messages import Detector, GridSpec, ImageRef, Optics, Target, VolumeStatus

if TYPE_CHECKING:  # the configuration imports the simulator's settings from this package
    from acquisition.config import MicroscopeConfig

F32 = npt.NDArray[np.float32]

# Seconds each operation takes on a real scope; divided by the speed factor.
REAL_SECONDS = {
    "connect": 5.0,
    "load": 90.0,
    "atlas": 600.0,
    "move": 4.0,
    "square": 15.0,
    "expose": 6.0,
}


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class SimulatedMicroscope:
    """:class:`acquisition.driver.Microscope` on synthetic images (see ``acquisition.physics``)."""

    driver = "simulated"

    def __init__(self, microscope: MicroscopeConfig, data_root: Path) -> None:
        self.microscope = microscope
        self.config = microscope.simulator
        self.id, self.name = microscope.id, microscope.name
        self.optics: Optics = microscope.optics
        self.detector: Detector = microscope.detector
        self.data_root = data_root
        self.connected = False
        self.checkpoint: Callable[[], None] = no_checkpoint
        self.connect_calls = 0
        self.moves = 0
        self.exposures = 0
        self.grid: GridSpec | None = None

    async def _take(self, what: str) -> None:
        await asyncio.sleep(REAL_SECONDS[what] / self.config.speed)  # the scope's own time

    def _require_connection(self) -> None:
        if not self.connected:
            raise DriverError(f"{self.name} is not connected")

    async def connect(self) -> None:
        self.connect_calls += 1
        await self._take("connect")
        if self.config.faults.fail_connect:
            raise DriverError(f"{self.name}: connection refused (injected fault)")
        self.connected = True

    async def disconnect(self) -> None:
        self.connected = False

    async def load_grid(self, grid: GridSpec) -> None:
        self._require_connection()
        await self._take("load")
        self.grid = grid

    async def atlas(self, grid: GridSpec, out_dir: Path) -> ImageRef:
        self._require_connection()
        c = self.config
        image, truth = await asyncio.to_thread(
            simulate_atlas,
            _seed(c.seed, grid.grid_id, "atlas"),
            shape=(c.atlas_px, c.atlas_px),
            mesh=c.mesh,
        )
        await self._take("atlas")
        return await _save(out_dir / f"atlas_{grid.position:02d}.mrc", image, truth)

    async def move_stage(self, target: Target) -> None:
        self._require_connection()
        self.moves += 1
        every = self.config.faults.stage_error_every
        await self._take("move")
        if every and self.moves % every == 0:
            raise DriverError(
                f"{self.name}: stage did not reach {target.kind} {target.target_id.hex[:6]}"
                " (injected fault)"
            )

    async def image_square(self, grid: GridSpec, square: Target, out_dir: Path) -> ImageRef:
        self._require_connection()
        c = self.config
        image, truth = await asyncio.to_thread(
            simulate_square,
            _seed(c.seed, square.target_id),
            shape=(c.square_px, c.square_px),
            pattern=c.pattern,
            mesh=c.mesh,
        )
        await self._take("square")
        return await _save(out_dir / f"square_{square.target_id.hex[:12]}.mrc", image, truth)

    async def expose(self, grid: GridSpec, hole: Target, out_dir: Path) -> AcquiredMovie:
        self._require_connection()
        faults, c = self.config.faults, self.config
        if (
            faults.disconnect_after_exposures is not None
            and self.exposures >= faults.disconnect_after_exposures
        ):
            self.connected = False
            raise DriverError(f"{self.name}: connection to the scope dropped (injected fault)")
        if any(v.level == "critical" and v.free_bytes < 1 for v in self.volumes()):
            raise DiskFull(f"{self.name}: no space left on the data volume")
        self.exposures += 1
        frames, truth = await asyncio.to_thread(
            simulate_movie,
            _seed(c.seed, hole.target_id, self.exposures),
            shape=(c.movie_px, c.movie_px),
            n_frames=c.frames,
            pixel_size_a=self.detector.pixel_size_a,
            dose_per_frame_e_per_a2=c.dose_per_frame,
        )
        await self._take("expose")
        path = out_dir / "movies" / f"movie_{self.exposures:05d}_{hole.target_id.hex[:8]}.mrc"
        path.parent.mkdir(parents=True, exist_ok=True)
        if faults.slow_file_s:
            await asyncio.sleep(faults.slow_file_s)  # the injected slow file system
        if faults.hold_file is not None:
            await _held(faults.hold_file)
        await asyncio.to_thread(
            write_simulated_mrc,
            path,
            frames,
            pixel_size_a=self.detector.pixel_size_a,
            dose_e_per_a2=c.dose_per_frame * c.frames,
            overwrite=True,
        )
        path.with_suffix(".truth.json").write_text(truth.to_json())
        if faults.truncate_every and self.exposures % faults.truncate_every == 0:
            truncate(path)
        return AcquiredMovie(
            path, c.frames, c.dose_per_frame * c.frames, self.detector.pixel_size_a, frames.shape
        )

    def volumes(self) -> list[VolumeStatus]:
        self.data_root.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(self.data_root)
        free = usage.free
        forced = self.config.faults.disk_free_fraction
        if forced is not None:
            free = int(usage.total * forced)
        return [
            VolumeStatus(
                name="data", path=str(self.data_root), total_bytes=usage.total, free_bytes=free
            )
        ]


HOLD_POLL_S = 0.01


async def _held(gate: Path) -> None:
    """Wait while ``gate`` exists; ``<gate>.held`` exists while waiting (a file, not an
    event: the holder may be another process)."""
    if not gate.exists():
        return
    held = gate.with_name(gate.name + ".held")
    held.touch()
    try:
        while gate.exists():
            await asyncio.sleep(HOLD_POLL_S)  # polled: the test's process owns the gate
    finally:
        held.unlink(missing_ok=True)


async def _save(path: Path, image: F32, truth: AtlasTruth | SquareImageTruth) -> ImageRef:
    """Write an image as MRC with its ground truth and a PNG preview beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixel_a = truth.pixel_size_nm * 10
    await asyncio.to_thread(write_simulated_mrc, path, image, pixel_size_a=pixel_a, overwrite=True)
    path.with_suffix(".truth.json").write_text(truth.to_json())
    preview = await asyncio.to_thread(write_preview, path, image)
    return ImageRef(
        path=str(path), pixel_size_a=pixel_a, shape=image.shape, preview_path=str(preview)
    )


def run_dir(data_root: Path, microscope_id: str, session_name: str, run_id: UUID) -> Path:
    """Where a run writes: ``<root>/<microscope>/<session>/run-<id8>/``."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in session_name)
    return data_root / microscope_id / safe / f"run-{run_id.hex[:8]}"
