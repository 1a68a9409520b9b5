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
    assert "bytes in data block" in info.value.reason  # says what is missing
    assert info.value.reason.startswith("truncated file: ")
    assert f"{size - 5000 - 1024:,} of the {4 * 64 * 64 * 4:,} bytes" in info.value.reason


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


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.float32])
def test_open_movie_maps_frames_in_their_own_dtype(tmp_path: Path, dtype: type) -> None:
    data = (np.arange(3 * 4 * 5) % 50).astype(dtype).reshape(3, 4, 5)
    _write(tmp_path / "m.mrc", data, voxel=0.9)
    with mrcfile.open(tmp_path / "m.mrc") as mrc:
        stored = mrc.data.dtype  # mrcfile keeps uint8 as uint16 (mode 6)
    with io.open_movie(tmp_path / "m.mrc") as movie:
        assert movie.frames.dtype == stored
        assert movie.frames.shape == (3, 4, 5)
        assert np.array_equal(movie.frames, data)
        assert not movie.frames.flags.writeable
        assert movie.info.pixel_size_a == pytest.approx(0.9)


def test_open_movie_treats_an_image_as_one_frame(tmp_path: Path) -> None:
    _write(tmp_path / "i.mrc", np.ones((6, 7), dtype=np.float32))
    with io.open_movie(tmp_path / "i.mrc") as movie:
        assert movie.frames.shape == (1, 6, 7)


def test_open_movie_raises_corrupt_image_before_the_block(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.mrc", np.ones((4, 64, 64), dtype=np.float32))
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size - 5000)
    with pytest.raises(CorruptImage, match="bytes in data block"), io.open_movie(path):
        pytest.fail("the block must not run for a truncated file")
    with pytest.raises(CorruptImage, match="not found"), io.open_movie(tmp_path / "absent.mrc"):
        pytest.fail("the block must not run for a missing file")


def test_open_movie_lets_errors_of_the_block_through(tmp_path: Path) -> None:
    path = _write(tmp_path / "ok.mrc", np.ones((2, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="numerics"), io.open_movie(path):
        raise ValueError("numerics")


def test_read_mrc_converts_every_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io, "_CHUNK", 7)  # several chunks, the last one short
    data = np.arange(5 * 6, dtype=np.int16).reshape(5, 6)
    _write(tmp_path / "c.mrc", data)
    image, _ = io.read_image(tmp_path / "c.mrc")
    assert image.dtype == np.float32 and np.array_equal(image, data)
    nan = np.ones((5, 6), dtype=np.float32)
    nan[4, 5] = np.inf  # in the last chunk
    with pytest.warns(RuntimeWarning):
        _write(tmp_path / "inf.mrc", nan)
    with pytest.raises(CorruptImage, match="NaN or infinite"):
        io.read_image(tmp_path / "inf.mrc")
