"""Writing what the simulated scope records: MRC files, PNG previews, ground truth JSON."""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
from PIL import Image

PREVIEW_PX = 1024


def write_mrc(path: Path, data: npt.NDArray[np.float32], pixel_size_a: float) -> None:
    """Write ``data`` (2-D image or 3-D movie) as float32 MRC, atomically (temp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = pixel_size_a
    os.replace(tmp, path)


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
