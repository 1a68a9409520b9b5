"""The exposure pipeline end to end on small simulated movies (file in, numbers and PNGs out)."""

from __future__ import annotations

import io as bytes_io
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from PIL import Image

from acquisition.physics import simulate_movie, write_simulated_mrc
from acquisition.physics.truth import MovieTruth
from processing import pipeline
from proto.errors import CorruptImage


def _movie(tmp_path: Path, dtype: type = np.float32) -> tuple[Path, MovieTruth]:
    frames, truth = simulate_movie(21, shape=(512, 512), n_frames=6, dose_per_frame_e_per_a2=2.0)
    path = tmp_path / "movie.mrc"
    if dtype is np.float32:
        write_simulated_mrc(path, frames, pixel_size_a=1.0, dose_e_per_a2=2.0)
    else:
        with mrcfile.new(path) as mrc:
            mrc.set_data(np.clip(frames, 0, 255).astype(dtype))  # counts, as EPU writes them
            mrc.voxel_size = 1.0
    return path, truth


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_exposure_gives_ctf_drift_ice_and_pngs(tmp_path: Path, dtype: type) -> None:
    path, truth = _movie(tmp_path, dtype)
    result = pipeline.exposure(str(path), 1.0, 12.0)
    assert result.ctf is not None
    assert result.drift_total_a is not None and result.drift_total_a > 0
    assert result.ice_nm == pytest.approx(truth.micrograph.ice_nm, abs=5.0)
    thumb = Image.open(bytes_io.BytesIO(result.thumbnail.read_bytes()))
    spectrum = Image.open(bytes_io.BytesIO(result.spectrum.read_bytes()))
    assert thumb.size == (512, 512) and thumb.mode == "L"
    assert spectrum.size == (256, 256) and spectrum.mode == "L"


def test_exposure_reports_non_finite_movies_as_corrupt(tmp_path: Path) -> None:
    frames = np.ones((3, 64, 64), dtype=np.float32)
    frames[1, 5, 5] = np.nan
    path = tmp_path / "nan.mrc"
    with pytest.warns(RuntimeWarning):
        with mrcfile.new(path) as mrc:
            mrc.set_data(frames)
    with pytest.raises(CorruptImage, match="frame 1"):
        pipeline.exposure(str(path), 1.0, 3.0)


def test_exposure_reports_truncated_movies_as_corrupt(tmp_path: Path) -> None:
    path, _ = _movie(tmp_path)
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with pytest.raises(CorruptImage):
        pipeline.exposure(str(path), 1.0, 12.0)
