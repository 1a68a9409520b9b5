"""From a pixel of an image SerialEM took to the stage position under it.

SerialEM reports, for the image in a buffer, the affine transformation from image to stage
coordinates (``BufImageToStageMatrix buf 0``: ``Xstage = a·x + b·y + dx``,
``Ystage = c·x + d·y + dy``, µm, with image ``y`` counted from the *top* of the image). It
writes MRC files the other way up (``KImageStore::convertForWriting`` flips Y, so a file's
first row is the image's bottom row), and processing finds targets as rows of the file as
mrcfile reads it. So a target at file row ``r`` of an image ``ny`` rows high is at buffer
``y = ny - 1 - r``. Nothing here assumes a scale or an orientation: both come from SerialEM.

Each image's transformation is kept in a small JSON file beside the image on the share
(``<image>.stage.json``), so a restarted run can move to squares of an atlas, or holes of a
square image, that an earlier run took.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

SIDECAR_SUFFIX = ".stage.json"


@dataclass(frozen=True)
class ImageToStage:
    """SerialEM's image-to-stage transformation of one image, and the image's size."""

    a: float
    b: float
    c: float
    d: float
    dx: float
    dy: float
    nx: int
    ny: int

    @classmethod
    def from_serialem(cls, values: Sequence[float], nx: int, ny: int) -> ImageToStage:
        """From the 6 values ``BufImageToStageMatrix`` reports (``a b c d dx dy``).

        Raises:
            ValueError: not 6 numbers, or a transformation that cannot be inverted.
        """
        if len(values) != 6:
            raise ValueError(f"expected 6 values from BufImageToStageMatrix, got {values!r}")
        a, b, c, d, dx, dy = (float(v) for v in values)
        if abs(a * d - b * c) < 1e-12:
            raise ValueError(f"the image-to-stage matrix {values!r} is singular")
        return cls(a, b, c, d, dx, dy, int(nx), int(ny))

    @property
    def microns_per_pixel(self) -> float:
        """The image's scale on the stage (the square root of the determinant)."""
        return math.sqrt(abs(self.a * self.d - self.b * self.c))

    def buffer_to_stage(self, x: float, y: float) -> tuple[float, float]:
        """Stage X, Y (µm) of the buffer point ``(x, y)`` (``y`` from the image's top)."""
        return (self.a * x + self.b * y + self.dx, self.c * x + self.d * y + self.dy)

    def file_to_stage(self, x: float, row: float) -> tuple[float, float]:
        """Stage X, Y (µm) of column ``x``, row ``row`` of the MRC file SerialEM wrote."""
        return self.buffer_to_stage(x, self.ny - 1 - row)

    def save(self, image: Path) -> Path:
        """Write the sidecar of ``image``; returns its path."""
        path = sidecar(image)
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, image: Path) -> ImageToStage:
        """The sidecar of ``image``. Raises ``OSError`` or ``ValueError``."""
        data = json.loads(sidecar(image).read_text())
        return cls(**{k: data[k] for k in ("a", "b", "c", "d", "dx", "dy", "nx", "ny")})


def sidecar(image: Path) -> Path:
    return image.with_name(image.name.removesuffix(image.suffix) + SIDECAR_SUFFIX)


def distance_from_centre(x_um: float, y_um: float) -> float:
    return math.hypot(x_um, y_um)
