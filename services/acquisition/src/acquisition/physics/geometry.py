"""Square-lattice pixel geometry shared by the atlas and square-image simulators."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


@dataclasses.dataclass(frozen=True)
class Lattice:
    """A square lattice: node ``(i, j)`` sits at ``origin + i*a1 + j*a2`` (pixels, (y, x)).

    ``a1 = pitch * (sin t, cos t)`` and ``a2 = pitch * (cos t, -sin t)`` for angle ``t``
    measured counter-clockwise from +x towards +y.
    """

    origin: tuple[float, float]
    pitch: float
    angle_rad: float

    def node(self, i: float, j: float) -> tuple[float, float]:
        """Pixel centre ``(y, x)`` of node ``(i, j)``."""
        c, s = math.cos(self.angle_rad), math.sin(self.angle_rad)
        y = self.origin[0] + self.pitch * (i * s + j * c)
        x = self.origin[1] + self.pitch * (i * c - j * s)
        return y, x

    def coords(self, shape: tuple[int, int]) -> tuple[I32, I32, F32, F32]:
        """Nearest node indices and pixel offsets from it for every pixel of ``shape``.

        Returns:
            ``(i, j, du, dv)``: int32 node indices and float32 offsets (pixels) along
            ``a1`` and ``a2`` from the node to the pixel.
        """
        c, s = math.cos(self.angle_rad), math.sin(self.angle_rad)
        ys = (np.arange(shape[0], dtype=np.float32) - np.float32(self.origin[0]))[:, None]
        xs = (np.arange(shape[1], dtype=np.float32) - np.float32(self.origin[1]))[None, :]
        u = (xs * np.float32(c / self.pitch)) + (ys * np.float32(s / self.pitch))
        v = (ys * np.float32(c / self.pitch)) - (xs * np.float32(s / self.pitch))
        i = np.floor(u + np.float32(0.5))
        j = np.floor(v + np.float32(0.5))
        du = (u - i) * np.float32(self.pitch)
        dv = (v - j) * np.float32(self.pitch)
        return i.astype(np.int32), j.astype(np.int32), du, dv

    def index_range(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Inclusive ``(imin, imax, jmin, jmax)`` of nodes that can touch the image."""
        corners = [(0.0, 0.0), (0.0, shape[1]), (shape[0], 0.0), (shape[0], shape[1])]
        c, s = math.cos(self.angle_rad), math.sin(self.angle_rad)
        us, vs = [], []
        for y, x in corners:
            dy, dx = y - self.origin[0], x - self.origin[1]
            us.append((dx * c + dy * s) / self.pitch)
            vs.append((dy * c - dx * s) / self.pitch)
        return (
            math.floor(min(us)) - 1,
            math.ceil(max(us)) + 1,
            math.floor(min(vs)) - 1,
            math.ceil(max(vs)) + 1,
        )
