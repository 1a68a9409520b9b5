"""Files SerialEM writes, as they appear on the services' side of the share."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import mrcfile
import numpy as np
from PIL import Image

from acquisition.simulator.files import write_preview

POLL_S = 0.1
"""How often the share is looked at while a file is awaited (a network share has no
notifications that reach across machines)."""

FRAME_SUFFIXES = {"mrc": (".mrc", ".mrcs"), "tiff": (".tif", ".tiff"), "eer": (".eer",)}


async def appeared(path: Path, timeout_s: float) -> bool:
    """Whether ``path`` is on the share, whole, within ``timeout_s``: it exists and its size
    stayed the same between two looks (a file still being copied in grows)."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while True:
        size = await asyncio.to_thread(_size, path)
        if size is not None and size == last:
            return True
        last = size if size is not None else -1
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_S)  # polling the share: see POLL_S


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def mrc_shape(path: Path) -> tuple[int, ...]:
    """The shape of an MRC image ``(ny, nx)`` or stack ``(nz, ny, nx)`` from its header.

    Raises:
        ValueError: not an MRC file mrcfile can read the header of.
    """
    with mrcfile.open(path, header_only=True, permissive=True) as mrc:
        h = mrc.header
        nx, ny, nz = int(h.nx), int(h.ny), int(h.nz)
    if nx <= 0 or ny <= 0:
        raise ValueError(f"{path} has no valid MRC header")
    return (ny, nx) if nz <= 1 else (nz, ny, nx)


def tiff_shape(path: Path) -> tuple[int, int, int]:
    """``(frames, ny, nx)`` of a TIFF or EER movie from its directory entries (no decoding).

    Raises:
        ValueError: not a TIFF Pillow can read the entries of.
    """
    try:
        with Image.open(path) as image:
            nx, ny = image.size
            return (int(getattr(image, "n_frames", 1)), int(ny), int(nx))
    except OSError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def preview(path: Path) -> Path:
    """Write the PNG preview of a single MRC image beside it (what the pages show)."""
    with mrcfile.open(path, permissive=True) as mrc:
        data = np.asarray(mrc.data, dtype=np.float32)
    if data.ndim == 3:
        data = data[0]
    # rows as in the file (not as SerialEM shows them): the pages draw the targets, which
    # are rows of the file, over this picture
    return write_preview(path, data)
