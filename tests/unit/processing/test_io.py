"""MRC edge: round trips, FEI extended headers in SI units, corrupt files -> CorruptImage."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from acquisition.physics import write_simulated_mrc
from processing import io
from proto.errors import CorruptImage


def _write(path: Path, data: np.ndarray, voxel: float = 1.5) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    return path


def test_image_round_trip_with_voxel_size(tmp_path: Path) -> None:
    data = np.arange(12 * 16, dtype=np.float32).reshape(12, 16)
    io.write_mrc(tmp_path / "a.mrc", data, pixel_size_a=0.83)
    image, pixel = io.read_image(tmp_path / "a.mrc")
    assert np.array_equal(image, data)
    assert pixel == pytest.approx(0.83)
    with pytest.raises(FileExistsError):
        io.write_mrc(tmp_path / "a.mrc", data, pixel_size_a=0.83)


def test_int16_movie_is_read_as_float32_frames(tmp_path: Path) -> None:
    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    _write(tmp_path / "m.mrc", data)
    frames, pixel = io.read_movie(tmp_path / "m.mrc")
    assert frames.dtype == np.float32 and frames.shape == (3, 4, 5)
    assert pixel == pytest.approx(1.5)
    with pytest.raises(CorruptImage):
        io.read_image(tmp_path / "m.mrc")


def test_fei_extended_header_is_converted_from_si_units(tmp_path: Path) -> None:
    frames = np.ones((2, 8, 8), dtype=np.float32)
    path = write_simulated_mrc(
        tmp_path / "epu.mrc", frames, pixel_size_a=1.1, voltage_kv=300.0, dose_e_per_a2=1.2
    )
    with mrcfile.open(path, mode="r+") as mrc:
        mrc.voxel_size = 9.9  # the FEI header wins over the voxel size
    data, info = io.read_mrc(path)
    assert data.shape == (2, 8, 8)
    assert info.pixel_size_a == pytest.approx(1.1)
    assert info.voltage_kv == pytest.approx(300.0)
    assert info.dose_e_per_a2 == pytest.approx(1.2)


def test_zero_voxel_size_gives_no_pixel_size(tmp_path: Path) -> None:
    _write(tmp_path / "z.mrc", np.zeros((4, 4), dtype=np.float32), voxel=0.0)
    _, pixel = io.read_image(tmp_path / "z.mrc")
    assert pixel is None


def test_truncated_file_raises_corrupt_image(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.mrc", np.ones((4, 64, 64), dtype=np.float32))
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.truncate(size - 5000)
    with pytest.raises(CorruptImage) as info:
        io.read_movie(path)
    assert info.value.path == str(path)
    assert info.value.reason


def test_header_only_and_garbage_files_raise_corrupt_image(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.mrc", np.ones((8, 8), dtype=np.float32))
    with path.open("r+b") as fh:
        fh.truncate(100)  # shorter than the 1024-byte header
    with pytest.raises(CorruptImage):
        io.read_image(path)
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"not an mrc file" * 200)
    with pytest.raises(CorruptImage):
        io.read_image(junk)


def test_bad_mode_and_non_finite_data_raise_corrupt_image(tmp_path: Path) -> None:
    path = _write(tmp_path / "mode.mrc", np.ones((8, 8), dtype=np.float32))
    with mrcfile.open(path, mode="r+", permissive=True) as mrc:
        mrc.header.mode = 99
    with pytest.raises(CorruptImage):
        io.read_image(path)
    nan = np.ones((8, 8), dtype=np.float32)
    nan[2, 3] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):  # mrcfile warns while writing
        _write(tmp_path / "nan.mrc", nan)
    with pytest.raises(CorruptImage, match="NaN"):
        io.read_image(tmp_path / "nan.mrc")


def test_missing_file_raises_corrupt_image(tmp_path: Path) -> None:
    with pytest.raises(CorruptImage, match="not found"):
        io.read_movie(tmp_path / "absent.mrc")
