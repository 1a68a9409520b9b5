"""What the simulated scope leaves beside its MRC files: PNG previews, and truncated files
when that fault is injected. (MRC files themselves: ``acquisition.physics.mrc``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

PREVIEW_PX = 1024


def truncate(path: Path, keep_fraction: float = 0.5) -> None:
    """Cut a file short, as a transfer that died half-way would leave it."""
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.truncate(int(size * keep_fraction))


def write_preview(path: Path, image: npt.NDArray[np.float32]) -> Path:
    """A contrast-stretched 8-bit PNG no larger than ``PREVIEW_PX`` on a side."""
    factor = max(1, int(np.ceil(max(image.shape) / PREVIEW_PX)))
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    small = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))
    lo, hi = np.percentile(small, [0.5, 99.5])
    scaled = np.clip((small - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255
    png = path.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scaled.astype(np.uint8)).save(png)
    return png
