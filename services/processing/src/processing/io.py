"""MRC reading and writing: the only module that touches ``mrcfile``.

Every failure to read (bad header, truncated data block, unsupported mode, non-finite values,
unreadable file) becomes ``proto.errors.CorruptImage(path, reason)``. EPU/FEI extended headers
(FEI1/FEI2) are read in their SI units and converted to Å, kV, mm and e/Å².
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import numpy.typing as npt

from proto.errors import CorruptImage

F32 = npt.NDArray[np.float32]
_CHUNK = 1 << 24
"""Values converted and checked per step when reading into memory (64 MB of float32)."""


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


def _open(name: str) -> Any:
    """Open an MRC file as a read-only memory map, header problems raised as errors.

    mrcfile reports some header problems as warnings; they are errors here. The filter only
    covers the header parse: the data are read later, outside it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return mrcfile.mmap(name, mode="r", permissive=False)
        except ValueError:
            # A short file fails the map with "mmap length is greater than file size";
            # mrcfile's reader says what is missing ("Expected N bytes in data block but
            # limit is M"), and checks the size before it reads any data.
            mrcfile.open(name, mode="r", permissive=False).close()
            raise


def _header(name: str, mrc: Any, data: npt.NDArray[Any]) -> MrcInfo:
    if data.ndim not in (2, 3) or data.size == 0:
        raise CorruptImage(name, f"expected a 2-D image or 3-D stack, got shape {data.shape}")
    if data.dtype.kind not in "iuf":
        raise CorruptImage(name, f"unsupported data type {data.dtype}")
    voxel = _positive(mrc.voxel_size.x)
    fei = _fei_fields(mrc)
    return MrcInfo(
        shape=tuple(int(v) for v in data.shape),
        pixel_size_a=fei.get("pixel_size_a") or voxel,
        voltage_kv=fei.get("voltage_kv"),
        dose_e_per_a2=fei.get("dose_e_per_a2"),
        applied_defocus_a=fei.get("applied_defocus_a"),
    )


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """Turn every failure to read ``name`` into ``CorruptImage``."""
    try:
        yield
    except CorruptImage:
        raise
    except FileNotFoundError as exc:
        raise CorruptImage(name, "file not found") from exc
    except (ValueError, OSError, RuntimeWarning, EOFError) as exc:
        raise CorruptImage(name, _in_words(str(exc)) or type(exc).__name__) from exc


_SHORT = re.compile(r"Expected (\d+) bytes in data block but limit is (\d+)")


def _in_words(message: str) -> str:
    """mrcfile's message for a file cut short, as an operator reads it (still naming the
    bytes in the data block it expected)."""
    short = _SHORT.search(message)
    if short is None:
        return message
    expected, present = int(short[1]), int(short[2])
    return (
        f"truncated file: {present:,} of the {expected:,} bytes in data block"
        f" ({100 * present / expected:.0f} %); the file was cut short while written or copied"
    )


def read_mrc(path: str | os.PathLike[str]) -> tuple[F32, MrcInfo]:
    """Read a 2-D image or a 3-D movie as float32 with its header information.

    The file is memory-mapped and converted to float32 in one pass (one copy of the data,
    checked for NaN and infinity as it goes).

    Args:
        path: the MRC file.
    Returns:
        ``(data, info)``; data is a new float32 array (``(frames, rows, cols)`` for stacks).
    Raises:
        CorruptImage: if the file is missing, unreadable, truncated, has a bad header or an
            unsupported mode, or contains non-finite values.
    """
    name = os.fspath(path)
    with _reading(name):
        mrc = _open(name)
        try:
            raw = mrc.data
            info = _header(name, mrc, raw)
            data = np.empty(raw.shape, dtype=np.float32)
            flat, out = raw.reshape(-1), data.reshape(-1)
            for start in range(0, flat.size, _CHUNK):
                part = out[start : start + _CHUNK]
                part[...] = flat[start : start + _CHUNK]
                if raw.dtype.kind == "f" and not np.isfinite(part).all():
                    raise CorruptImage(name, "data contain NaN or infinite values")
        finally:
            mrc.close()
    return data, info


@dataclasses.dataclass(frozen=True)
class Movie:
    """A memory-mapped movie (see ``open_movie``).

    Attributes:
        frames: read-only ``(frames, rows, cols)`` view of the file in its own data type
            (int8, int16, uint8, uint16, float16 or float32); a 2-D file is one frame.
        info: the header information.
    """

    frames: npt.NDArray[Any]
    info: MrcInfo


@contextlib.contextmanager
def open_movie(path: str | os.PathLike[str]) -> Iterator[Movie]:
    """Memory-map a movie for one pass of processing, without reading or converting it.

    Nothing is copied up front: the consumer converts frames as it goes (a 40 × 4096² float32
    movie is 2.7 GB; reading it into memory first would cost a copy and the RAM). The values
    are **not** checked for NaN or infinity here, since that would be one more pass over the
    data; ``processing.imaging.motion.align_movie`` checks every frame as it transforms it.
    The frames are valid only inside the ``with`` block. The file must not be truncated while
    it is mapped (files arrive complete: they are written beside their name and renamed).

    Raises:
        CorruptImage: if the file is missing, unreadable, truncated, has a bad header or an
            unsupported mode. Errors raised inside the block pass through unchanged.
    """
    name = os.fspath(path)
    with _reading(name):
        mrc = _open(name)
    try:
        with _reading(name):
            data = mrc.data
            movie = Movie(data if data.ndim == 3 else data[None], _header(name, mrc, data))
        yield movie
    finally:
        mrc.close()


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
