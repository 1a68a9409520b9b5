"""What the fake SerialEM's microscope looks at: grids in a cassette, made by the simulated
microscope's physics, placed on the stage.

An atlas is a simulated whole-grid image whose rim (about 1.8 mm across) is centred on the
stage origin, seen by a camera turned ``CAMERA_ROTATION_DEG`` from the stage axes with image
``y`` pointing down (stage ``Y`` up), as SerialEM's buffers are. A square image is a simulated
square imaged around the current stage position; a movie is simulated where the stage is. The
transformations from buffer pixels to stage are what the fake reports for
``BufImageToStageMatrix``, and ``square_stage`` is the ground truth a test compares moves with.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import numpy.typing as npt

from acquisition.physics.atlas import simulate_atlas
from acquisition.physics.movie import simulate_movie
from acquisition.physics.square import simulate_square
from acquisition.physics.truth import AtlasTruth
from acquisition.simulator.settings import SimulatorSettings

F32 = npt.NDArray[np.float32]
CAMERA_ROTATION_DEG = 5.0
RIM_RADIUS_UM = 900.0


def seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little")


@dataclass(frozen=True)
class Placement:
    """Buffer pixel → stage µm: ``stage = centre + s·R(θ)·(x - cx, cy - y)``."""

    centre_um: tuple[float, float]
    um_per_px: float
    nx: int
    ny: int
    theta_deg: float = CAMERA_ROTATION_DEG

    def matrix(self) -> tuple[float, float, float, float, float, float]:
        """``a b c d dx dy`` with ``X = a·x + b·y + dx``, ``Y = c·x + d·y + dy``."""
        t, s = math.radians(self.theta_deg), self.um_per_px
        cx, cy = (self.nx - 1) / 2, (self.ny - 1) / 2
        a, b = s * math.cos(t), s * math.sin(t)
        c, d = s * math.sin(t), -s * math.cos(t)
        dx = self.centre_um[0] - a * cx - b * cy
        dy = self.centre_um[1] - c * cx - d * cy
        return (a, b, c, d, dx, dy)

    def to_stage(self, x: float, y: float) -> tuple[float, float]:
        a, b, c, d, dx, dy = self.matrix()
        return (a * x + b * y + dx, c * x + d * y + dy)


@dataclass
class Image:
    """One of SerialEM's image buffers."""

    data: F32
    placement: Placement
    pixel_nm: float
    parameter_set: int
    """0 View, 1 Focus, 2 Trial, 3 Record, 4 Preview, 5 Search, 6 Mont-map (SerialEM's)."""
    binning: float = 1.0
    exposure_s: float = 1.0


@dataclass
class Grid:
    slot: int
    name: str
    settings: SimulatorSettings = field(repr=False)

    @property
    def seed(self) -> int:
        return seed(self.settings.seed, "slot", self.slot, self.name)

    def atlas(self) -> tuple[Image, AtlasTruth]:
        return _atlas(self.seed, self.settings.atlas_px, self.settings.mesh)

    def square_stage(self, centre: tuple[float, float]) -> tuple[float, float]:
        """Ground truth: the stage position of an atlas square centre ``(row, col)``."""
        image, _ = self.atlas()
        return image.placement.to_stage(centre[1], centre[0])

    def square_image(self, stage: tuple[float, float]) -> Image:
        c = self.settings
        key = seed(self.seed, round(stage[0]), round(stage[1]))
        data, truth = simulate_square(
            key, shape=(c.square_px, c.square_px), pattern=c.pattern, mesh=c.mesh
        )
        um = truth.pixel_size_nm / 1000
        return Image(data, Placement(stage, um, c.square_px, c.square_px), truth.pixel_size_nm, 5)

    def movie(
        self, stage: tuple[float, float], count: int, pixel_size_a: float
    ) -> tuple[F32, float]:
        """Frames at ``stage`` and their total dose (e/Å²)."""
        c = self.settings
        frames, _ = simulate_movie(
            seed(self.seed, round(stage[0], 1), round(stage[1], 1), count),
            shape=(c.movie_px, c.movie_px),
            n_frames=c.frames,
            pixel_size_a=pixel_size_a,
            dose_per_frame_e_per_a2=c.dose_per_frame,
        )
        return frames, c.dose_per_frame * c.frames


@cache
def _atlas(key: int, size: int, mesh: int) -> tuple[Image, AtlasTruth]:
    pixel_nm = RIM_RADIUS_UM * 1000 / (0.45 * size)
    data, truth = simulate_atlas(key, shape=(size, size), mesh=mesh, pixel_size_nm=pixel_nm)
    placement = Placement((0.0, 0.0), pixel_nm / 1000, size, size)
    return Image(data, placement, pixel_nm, 6), truth
