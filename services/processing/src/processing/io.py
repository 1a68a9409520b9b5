"""MRC reading and writing: the only module that touches ``mrcfile``.

Every failure to read (bad header, truncated data block, unsupported mode, non-finite values,
unreadable file) becomes ``proto.errors.CorruptImage(path, reason)``. EPU/FEI extended headers
(FEI1/FEI2) are read in their SI units and converted to Å, kV, mm and e/Å².
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import numpy.typing as npt

from proto.errors import CorruptImage

F32 = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True)
class MrcInfo:
    """What the header says about an image or movie.

    Attributes:
        shape: data shape, ``(rows, cols)`` or ``(frames, rows, cols)``.
        pixel_size_a: from the FEI extended header when present, else the voxel size;
            ``None`` when neither is set (voxel size 0).
        voltage_kv, dose_e_per_a2, applied_defocus_a: from the FEI extended header
            (first section) when present, else ``None``. ``dose_e_per_a2`` is FEI's "Dose"
            (e/m²) converted; ``applied_defocus_a`` keeps FEI's sign.
    """

    shape: tuple[int, ...]
    pixel_size_a: float | None
    voltage_kv: float | None = None
    dose_e_per_a2: float | None = None
    applied_defocus_a: float | None = None


def _positive(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def _fei_fields(mrc: mrcfile.mrcfile.MrcFile) -> dict[str, float | None]:
    """Values from the first FEI extended-header record, converted from SI units."""
    try:
        ext = mrc.indexed_extended_header
    except (ValueError, TypeError, AttributeError):  # AttributeError: no extended header
        return {}
    if ext is None or len(ext) == 0 or ext.dtype.names is None:
        return {}
    rec = ext[0]
    out: dict[str, float | None] = {}
    px = _positive(rec["Pixel size X"])
    out["pixel_size_a"] = px * 1e10 if px is not None else None
    ht = _positive(rec["HT"])
    out["voltage_kv"] = ht / 1e3 if ht is not None else None
    dose = _positive(rec["Dose"])
    out["dose_e_per_a2"] = dose * 1e-20 if dose is not None else None
    defocus = float(rec["Applied defocus"])
    out["applied_defocus_a"] = defocus * 1e10 if np.isfinite(defocus) and defocus != 0 else None
    return out


def read_mrc(path: str | os.PathLike[str]) -> tuple[F32, MrcInfo]:
    """Read a 2-D image or a 3-D movie as float32 with its header information.

    Args:
        path: the MRC file.
    Returns:
        ``(data, info)``; data is a new float32 array (``(frames, rows, cols)`` for stacks).
    Raises:
        CorruptImage: if the file is missing, unreadable, truncated, has a bad header or an
            unsupported mode, or contains non-finite values.
    """
    name = os.fspath(path)
    try:
        with warnings.catch_warnings():
            # mrcfile reports some header problems as warnings; treat them as corruption.
            warnings.simplefilter("error")
            with mrcfile.open(name, mode="r", permissive=False) as mrc:
                data = np.asarray(mrc.data, dtype=np.float32).copy()
                voxel = _positive(mrc.voxel_size.x)
                fei = _fei_fields(mrc)
    except FileNotFoundError as exc:
        raise CorruptImage(name, "file not found") from exc
    except (ValueError, OSError, RuntimeWarning, EOFError) as exc:
        raise CorruptImage(name, str(exc) or type(exc).__name__) from exc
    if data.ndim not in (2, 3) or data.size == 0:
        raise CorruptImage(name, f"expected a 2-D image or 3-D stack, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise CorruptImage(name, "data contain NaN or infinite values")
    pixel = fei.get("pixel_size_a") or voxel
    info = MrcInfo(
        shape=tuple(int(v) for v in data.shape),
        pixel_size_a=pixel,
        voltage_kv=fei.get("voltage_kv"),
        dose_e_per_a2=fei.get("dose_e_per_a2"),
        applied_defocus_a=fei.get("applied_defocus_a"),
    )
    return data, info


def write_mrc(
    path: str | os.PathLike[str],
    data: npt.NDArray[np.floating],
    *,
    pixel_size_a: float,
    overwrite: bool = False,
) -> Path:
    """Write a 2-D image or 3-D stack as float32 MRC (mode 2) with the voxel size set.

    The file is written beside its final name and renamed into place, so a reader never sees
    a half-written file.

    Args:
        path: destination.
        data: 2-D or 3-D array.
        pixel_size_a: pixel size in Å (> 0).
        overwrite: replace an existing file.
    Returns:
        The path written.
    Raises:
        ValueError: for bad dimensions or pixel size.
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
        mrc.set_data(np.asarray(data, dtype=np.float32))
        if data.ndim == 3:
            mrc.set_image_stack()  # a movie is a stack of images, as EPU writes them
        mrc.voxel_size = pixel_size_a
    partial.replace(target)
    return target


def read_image(path: str | os.PathLike[str]) -> tuple[F32, float | None]:
    """Read a 2-D image (a single-section stack is accepted): ``(image, pixel_size_a)``.

    Raises:
        CorruptImage: as ``read_mrc``, or if the file holds several sections.
    """
    data, info = read_mrc(path)
    if data.ndim == 3:
        if data.shape[0] != 1:
            raise CorruptImage(os.fspath(path), f"expected one image, got {data.shape[0]}")
        data = data[0]
    return data, info.pixel_size_a


def read_movie(path: str | os.PathLike[str]) -> tuple[F32, float | None]:
    """Read a movie as ``(frames (n, rows, cols), pixel_size_a)``; a 2-D file is one frame.

    Raises:
        CorruptImage: as ``read_mrc``.
    """
    data, info = read_mrc(path)
    if data.ndim == 2:
        data = data[None]
    return data, info.pixel_size_a
