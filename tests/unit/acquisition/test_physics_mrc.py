"""The simulator's MRC writer: atomic files with an FEI1 header in SI units."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from acquisition.physics import write_simulated_mrc


def test_movie_is_written_with_fei_header_in_si_units(tmp_path: Path) -> None:
    frames = np.arange(3 * 8 * 10, dtype=np.float32).reshape(3, 8, 10)
    path = write_simulated_mrc(
        tmp_path / "m.mrc", frames, pixel_size_a=1.25, voltage_kv=300.0, dose_e_per_a2=1.0
    )
    assert not (tmp_path / "m.mrc.partial").exists()
    with mrcfile.open(path) as mrc:
        assert np.array_equal(mrc.data, frames)
        assert float(mrc.voxel_size.x) == pytest.approx(1.25)
        ext = mrc.indexed_extended_header
        assert len(ext) == 3
        assert float(ext[0]["Pixel size X"]) == pytest.approx(1.25e-10)
        assert float(ext[0]["HT"]) == pytest.approx(3.0e5)
        assert float(ext[0]["Dose"]) == pytest.approx(1.0e20)


def test_counting_movies_are_8_bit_and_everything_else_float32(tmp_path: Path) -> None:
    counts = np.random.default_rng(1).poisson(1.0, size=(4, 16, 12)).astype(np.float32)
    counts[0, 0, 0] = 127
    cases = {
        "counts": (counts, np.int8),
        "fractional": (counts + 0.5, np.float32),
        "too many": (counts * 2, np.float32),  # 254 counts do not fit
        "negative": (counts - 1, np.float32),
        "image": (counts[0], np.float32),
    }
    for name, (data, dtype) in cases.items():
        path = write_simulated_mrc(tmp_path / f"{name}.mrc", data, pixel_size_a=1.0)
        with mrcfile.open(path) as mrc:
            assert mrc.data.dtype == dtype, name
            assert np.array_equal(mrc.data, data), name
            assert int(mrc.header.mode) == (0 if dtype == np.int8 else 2), name


def test_writer_refuses_to_overwrite_and_bad_input(tmp_path: Path) -> None:
    image = np.zeros((4, 4), dtype=np.float32)
    write_simulated_mrc(tmp_path / "a.mrc", image, pixel_size_a=1.0)
    with pytest.raises(FileExistsError):
        write_simulated_mrc(tmp_path / "a.mrc", image, pixel_size_a=1.0)
    write_simulated_mrc(tmp_path / "a.mrc", image, pixel_size_a=1.0, overwrite=True)
    with pytest.raises(ValueError):
        write_simulated_mrc(tmp_path / "b.mrc", np.zeros(4), pixel_size_a=1.0)
    with pytest.raises(ValueError):
        write_simulated_mrc(tmp_path / "c.mrc", image, pixel_size_a=0.0)
