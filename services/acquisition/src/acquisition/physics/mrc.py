"""Write simulated images and movies as MRC files, with an EPU-style (FEI1) extended header.

FEI extended headers store SI units: pixel size in m, high tension in V, dose in e/m².
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt
from mrcfile.dtypes import get_ext_header_dtype


def fei_extended_header(
    n_sections: int, *, pixel_size_a: float, voltage_kv: float, dose_e_per_a2: float
) -> npt.NDArray[np.void]:
    """An FEI1 extended header with one record per section, values in SI units."""
    dtype = get_ext_header_dtype(b"FEI1")
    ext = np.zeros(n_sections, dtype=dtype)
    ext["Metadata size"] = dtype.itemsize
    ext["Metadata version"] = 0
    ext["HT"] = voltage_kv * 1e3
    ext["Dose"] = dose_e_per_a2 * 1e20
    ext["Pixel size X"] = pixel_size_a * 1e-10
    ext["Pixel size Y"] = pixel_size_a * 1e-10
    return ext


def _counts(data: npt.NDArray[np.floating]) -> bool:
    """Whether ``data`` is a movie of whole counts that 8-bit integers hold (frame by frame:
    no temporary the size of the movie)."""
    if data.ndim != 3:
        return False
    for frame in data:
        if frame.size and (float(frame.min()) < 0 or float(frame.max()) > 127):
            return False
        if not np.array_equal(frame, np.rint(frame)):
            return False
    return True


def write_simulated_mrc(
    path: str | os.PathLike[str],
    data: npt.NDArray[np.floating],
    *,
    pixel_size_a: float,
    voltage_kv: float = 300.0,
    dose_e_per_a2: float | None = None,
    fei_header: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write an image ``(rows, cols)`` or movie ``(frames, rows, cols)`` as MRC.

    Images are float32 (mode 2). A movie of whole electron counts from 0 to 127, what a
    counting detector records (``simulate_movie`` at ~1 e/px per frame), is written as 8-bit
    integers (mode 0), as SerialEM and EPU write counting-mode MRC movies: a quarter of the
    bytes of float32, on disk and for every reader; any other movie is float32.

    The file appears atomically (written as ``<name>.partial`` and renamed), so a watcher
    never picks up a half-written movie.

    Args:
        path: destination.
        data: 2-D image or 3-D movie.
        pixel_size_a: pixel size in Å (> 0); also written as the voxel size.
        voltage_kv: high tension recorded in the FEI header.
        dose_e_per_a2: dose per section recorded in the FEI header (0 if ``None``).
        fei_header: write the FEI1 extended header.
        overwrite: replace an existing file.
    Returns:
        The written path.
    Raises:
        ValueError: for data that is not 2-D/3-D or a non-positive pixel size.
        FileExistsError: if the file exists and ``overwrite`` is False.
    """
    target = Path(path)
    if data.ndim not in (2, 3):
        raise ValueError(f"expected 2-D or 3-D data, got shape {data.shape}")
    if not pixel_size_a > 0:
        raise ValueError("pixel_size_a must be positive")
    if target.exists() and not overwrite:
        raise FileExistsError(target)
    partial = target.with_name(target.name + ".partial")
    with mrcfile.new(partial, overwrite=True) as mrc:
        mrc.set_data(data.astype(np.int8) if _counts(data) else np.asarray(data, np.float32))
        if data.ndim == 3:
            mrc.set_image_stack()
        mrc.voxel_size = pixel_size_a
        if fei_header:
            sections = data.shape[0] if data.ndim == 3 else 1
            mrc.set_extended_header(
                fei_extended_header(
                    sections,
                    pixel_size_a=pixel_size_a,
                    voltage_kv=voltage_kv,
                    dose_e_per_a2=dose_e_per_a2 or 0.0,
                )
            )
            mrc.header.exttyp = b"FEI1"
    partial.replace(target)
    return target
