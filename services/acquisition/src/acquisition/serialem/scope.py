"""A real microscope driven through SerialEM: :class:`SerialEMMicroscope`.

Every SerialEM command goes through :class:`~acquisition.serialem.client.SerialEMClient`
(off the event loop, with a timeout). Before a command that loads, moves or exposes, the driver
calls the run's :attr:`checkpoint`, so a Stop or a lost lease is honoured between commands,
never in the middle of one (an exposure is always finished and its frames awaited).
Images are written by SerialEM into the shared data folder and read back through the
configured path mapping; targets are turned into stage positions with the image-to-stage
matrix SerialEM reported for their image (:mod:`acquisition.serialem.geometry`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path, PurePath
from uuid import UUID

from acquisition.config import MicroscopeConfig, PathMapping, SerialEMConnection
from acquisition.driver import AcquiredMovie, DiskFull, DriverError, no_checkpoint
from acquisition.serialem import files
from acquisition.serialem.client import SerialEMClient
from acquisition.serialem.connection import first, last_frame_file, open_serialem, version_text
from acquisition.serialem.geometry import ImageToStage, distance_from_centre
from acquisition.serialem.loader import Autoloader
from proto.messages import Detector, GridSpec, ImageRef, Optics, Target, VolumeStatus

log = logging.getLogger(__name__)

REFUSED_GRACE_S = 10.0
"""How long a run keeps asking while SerialEM refuses external control at the start."""


class SerialEMMicroscope:
    """:class:`acquisition.driver.Microscope` on SerialEM's external-control socket."""

    driver = "serialem"

    def __init__(self, microscope: MicroscopeConfig, data_root: Path) -> None:
        if microscope.serialem is None or microscope.paths is None:
            raise ValueError(f"microscope {microscope.id} has no [serialem] and [paths]")
        self.microscope = microscope
        self.id, self.name = microscope.id, microscope.name
        self.optics: Optics = microscope.optics
        self.detector: Detector = microscope.detector
        self.conn: SerialEMConnection = microscope.serialem
        self.paths: PathMapping = microscope.paths
        self.data_root = data_root
        self.checkpoint: Callable[[], None] = no_checkpoint
        self.client: SerialEMClient | None = None
        self.version = 0
        self.loader = Autoloader(self)
        self._matrices: dict[UUID, ImageToStage] = {}
        """Image-to-stage per image: atlases by grid id, square images by square id."""
        self._sessions: dict[UUID, Path] = {}
        """Per grid, the session folder of an earlier run's atlas (a restarted run)."""
        self._dirs: set[str] = set()
        self._frames_dir: str | None = None
        self._exposures = 0
        self._share_problem: str | None = None

    # --- connection ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.alive

    @property
    def where(self) -> str:
        return f"{self.conn.host}:{self.conn.port}"

    async def connect(self) -> None:
        self.client, self.version = await open_serialem(self.conn, refused_grace_s=REFUSED_GRACE_S)
        self._dirs.clear()
        self._frames_dir = None
        log.info("SerialEM %s at %s", version_text(self.version), self.where)
        await self.sem("Echo", f"Gridpilot took external control of {self.name}")
        letter = self.microscope.imaging.exposure[0]
        # save frames (and leave their alignment to processing) for the exposure's set
        await self.sem("SetDoseFracParams", letter, 1, 1, 0)

    async def disconnect(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        last: list[tuple[str, tuple[int, ...]]] = [("Exit", (1,))]
        if self.conn.close_valves_at_end:
            last.insert(0, ("SetColumnOrGunValve", (0,)))
        for name, args in last:
            if not client.alive:
                break
            try:
                await client.call(name, *args, timeout=min(self.conn.timeout_s, 30))
            except Exception as exc:  # letting go must not fail
                log.warning("%s: %s while letting go of SerialEM: %s", self.name, name, exc)
        await client.close()

    async def sem(self, name: str, *args: str | int | float, long: bool = False) -> object:
        """One SerialEM command (``long`` for the montage and grid loading)."""
        if self.client is None:
            raise DriverError(f"{self.name} is not connected", fatal=True)
        timeout = self.conn.long_timeout_s if long else None
        result: object = await self.client.call(name, *args, timeout=timeout)
        return result

    # --- files on the share -------------------------------------------------------------

    def on_share(self, out_dir: Path) -> Path:
        """Where the run's ``out_dir`` (under the data root) is on the share."""
        scope_path = self.paths.scope_path
        if out_dir.is_relative_to(scope_path):
            return out_dir
        if out_dir.is_relative_to(self.data_root):
            return scope_path.joinpath(out_dir.relative_to(self.data_root))
        return scope_path / out_dir.name

    def windows(self, local: PurePath) -> str:
        return self.paths.to_scope(local)

    async def make_dir(self, local: Path) -> str:
        """SerialEM creates the folder (with its parents); returns its Windows path."""
        path = self.windows(local)
        if path not in self._dirs:
            await self.sem("MakeDirectory", path)
            self._dirs.add(path)
        return path

    async def await_file(self, local: Path, what: str, reported: str) -> None:
        if not await files.appeared(local, self.conn.frames_timeout_s):
            raise DriverError(
                f"{what} did not appear on the share at {local} within "
                f"{self.conn.frames_timeout_s:.0f} s (SerialEM wrote {reported}): is the "
                "share mounted here, and are [paths] windows_path and scope_path the same "
                "folder?",
                fatal=True,
            )

    async def save_buffer(
        self, buffer: str, local: Path, what: str
    ) -> tuple[ImageRef, ImageToStage]:
        """Save SerialEM's image ``buffer`` as MRC at ``local`` with its preview and matrix."""
        matrix_values = await self.sem("BufImageToStageMatrix", buffer, 0)
        props = await self.sem("ImageProperties", buffer)
        if not isinstance(props, tuple) or len(props) < 5:
            raise DriverError(f"SerialEM reported no properties for buffer {buffer}: {props!r}")
        nx, ny, pixel_nm = int(props[0]), int(props[1]), float(props[4])
        if not isinstance(matrix_values, tuple):
            raise DriverError(f"SerialEM reported no image-to-stage matrix: {matrix_values!r}")
        try:
            matrix = ImageToStage.from_serialem(matrix_values, nx, ny)
        except ValueError as exc:
            raise DriverError(f"{what}: {exc}") from exc
        target = self.windows(local)
        await self.sem("SaveToOtherFile", buffer, "MRC", "NONE", target)
        await self.await_file(local, what, target)
        shape = files.mrc_shape(local)
        preview = files.preview(local)
        matrix.save(local)
        ref = ImageRef(
            path=str(local),
            pixel_size_a=pixel_nm * 10 if pixel_nm > 0 else matrix.microns_per_pixel * 1e4,
            shape=shape,
            preview_path=str(preview),
        )
        return ref, matrix

    # --- the run's operations -----------------------------------------------------------

    async def load_grid(self, grid: GridSpec) -> None:
        await self.loader.load(grid)
        if grid.atlas is not None:  # a restarted run moves on an earlier run's atlas
            atlas = Path(grid.atlas.image.path)
            # <session>/run-<id>/grid<NN>/atlas_<NN>.mrc: the session's runs are siblings
            self._sessions[grid.grid_id] = atlas.parent.parent.parent
            try:
                self._matrices[grid.grid_id] = ImageToStage.load(atlas)
            except (OSError, ValueError, KeyError) as exc:
                log.warning(
                    "%s: no stage matrix for the atlas of %s: %s", self.name, grid.name, exc
                )

    async def atlas(self, grid: GridSpec, out_dir: Path) -> ImageRef:
        share = self.on_share(out_dir)
        await self.make_dir(share)
        await self.sem("SetLowDoseMode", 0)
        state = self.microscope.imaging.atlas
        code = first(await self.sem("GoToImagingState", state))
        if code is not None and float(code) != 0:
            raise DriverError(
                f"SerialEM could not set the imaging state '{state}' for the atlas "
                f"(GoToImagingState reported {float(code):.0f}: 1 no such state, 2 more than "
                "one matches, 3 number out of range, 5 its camera is not available)"
            )
        nx, ny = self.conn.atlas_montage
        montage = share / f"atlas_{grid.position:02d}_montage.mrc"
        await self.sem("OpenNewMontage", nx, ny, self.windows(montage))
        self.checkpoint()
        await self.sem("Echo", f"Gridpilot: atlas of grid {grid.name}")
        await self.sem("Montage", long=True)
        await self.sem("CloseFile")
        # after a montage, buffer B holds its overview (and A its centre)
        local = share / f"atlas_{grid.position:02d}.mrc"
        ref, self._matrices[grid.grid_id] = await self.save_buffer("B", local, "the atlas")
        return ref

    async def move_stage(self, target: Target) -> None:
        matrix = self._matrix_for(target)
        x, y = matrix.file_to_stage(target.x, target.y)
        limit = self.microscope.stage_radius_um
        if distance_from_centre(x, y) > limit:
            raise DriverError(
                f"{target.kind} {target.target_id.hex[:6]} is at stage ({x:.1f}, {y:.1f}) µm, "
                f"{distance_from_centre(x, y):.0f} µm from the centre, beyond the limit of "
                f"{limit:.0f} µm: not moving there"
            )
        self.checkpoint()
        await self.sem("MoveStageTo", round(x, 3), round(y, 3))

    def _matrix_for(self, target: Target) -> ImageToStage:
        key = target.grid_id if target.kind == "square" else target.parent_id
        matrix = self._matrices.get(key)
        if matrix is None and target.kind == "hole":
            matrix = self._earlier_square(target.parent_id, target.grid_id)
        if matrix is None:
            parent = "atlas" if target.kind == "square" else f"square {key.hex[:6]}"
            raise DriverError(
                f"no image-to-stage matrix for the {parent} of {target.kind} "
                f"{target.target_id.hex[:6]}: its image is not on the share"
            )
        return matrix

    def _earlier_square(self, square_id: UUID, grid_id: UUID) -> ImageToStage | None:
        """The matrix of a square an earlier run of the session imaged (beside its image)."""
        session = self._sessions.get(grid_id)
        if session is None:
            return None
        for found in sorted(session.glob(f"run-*/grid*/{square_file(square_id)}")):
            try:
                matrix = ImageToStage.load(found)
            except (OSError, ValueError, KeyError):
                continue
            self._matrices[square_id] = matrix
            return matrix
        return None

    async def image_square(self, grid: GridSpec, square: Target, out_dir: Path) -> ImageRef:
        share = self.on_share(out_dir)
        await self.make_dir(share)
        await self._acquire_in(self.microscope.imaging.square)
        local = share / square_file(square.target_id)
        what = f"the image of square {square.target_id.hex[:6]}"
        ref, self._matrices[square.target_id] = await self.save_buffer("A", local, what)
        return ref

    async def _acquire_in(self, area: str) -> None:
        """Go to the low-dose area and take its image (the command named like the area)."""
        await self.sem("SetLowDoseMode", 1)
        await self.sem("GoToLowDoseArea", area[0])
        self.checkpoint()
        await self.sem(area)

    async def expose(self, grid: GridSpec, hole: Target, out_dir: Path) -> AcquiredMovie:
        share = self.on_share(out_dir)
        if any(v.free_bytes == 0 for v in self.volumes()):
            raise DiskFull(f"{self.name}: no space left on the share {self.paths.scope_path}")
        frames = await self.make_dir(share / "frames")
        if frames != self._frames_dir:
            await self.sem("SetFolderForFrames", frames)
            self._frames_dir = frames
        self._exposures += 1
        await self.sem(
            "SetFrameBaseName", 0, 1, 0, f"movie_{self._exposures:05d}_{hole.target_id.hex[:8]}"
        )
        await self._acquire_in(self.microscope.imaging.exposure)
        # the exposure is taken: from here on nothing is interrupted until its frames are in
        reported = last_frame_file(await self.sem("ReportLastFrameFile"))
        try:
            local = self.paths.to_local(reported)
        except ValueError:
            raise DriverError(
                f"SerialEM saved the frames at {reported}, outside the shared folder "
                f"{self.paths.windows_path}: set the camera's frame folder inside it",
                fatal=True,
            ) from None
        self._check_format(local)
        await self.await_file(local, f"the frames of exposure {self._exposures}", reported)
        shape = await self._movie_shape(local)
        dose = self.microscope.imaging.exposure_dose_e_per_a2
        return AcquiredMovie(local, shape[0], dose, self.detector.pixel_size_a, shape)

    def _check_format(self, local: Path) -> None:
        expected = files.FRAME_SUFFIXES[self.detector.frame_format]
        if local.suffix.lower() not in expected:
            raise DriverError(
                f"SerialEM saved the frames as {local.name}, but the configuration says "
                f"detector.frame_format = '{self.detector.frame_format}' ({', '.join(expected)})",
                fatal=True,
            )

    async def _movie_shape(self, local: Path) -> tuple[int, int, int]:
        try:
            if self.detector.frame_format == "mrc":
                shape = files.mrc_shape(local)
                if len(shape) == 3:
                    return (shape[0], shape[1], shape[2])
                return (1, shape[0], shape[1])
            return files.tiff_shape(local)
        except ValueError as exc:
            # a damaged file is processing's to report (it dead-letters it with the reason)
            log.warning("%s: cannot read the header of %s: %s", self.name, local, exc)
            count = first(await self.sem("ReportNumFramesSaved"))
            return (max(1, int(float(count or 1))), 1, 1)

    def volumes(self) -> list[VolumeStatus]:
        """The shared data folder, as the services see it (SerialEM is never asked)."""
        path = self.paths.scope_path
        try:
            usage = shutil.disk_usage(path)
        except OSError as exc:
            problem = f"{exc.strerror or exc}"
            if problem != self._share_problem:  # said once, not at every report
                log.warning("%s: the share %s cannot be read: %s", self.name, path, problem)
            self._share_problem = problem
            return []
        if self._share_problem is not None:
            log.info("%s: the share %s can be read again", self.name, path)
            self._share_problem = None
        return [
            VolumeStatus(
                name=f"{self.id} share",
                path=str(path),
                total_bytes=usage.total,
                free_bytes=usage.free,
                warning_fraction=self.paths.warning_free_fraction,
                critical_fraction=self.paths.critical_free_fraction,
            )
        ]


def square_file(square_id: UUID) -> str:
    return f"square_{square_id.hex[:12]}.mrc"
