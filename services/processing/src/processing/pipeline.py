"""What the handlers run in a worker thread: file in, numbers and PNGs out.

Only :mod:`processing.io` touches MRC files; the numerics are :mod:`processing.imaging`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processing import io
from processing.imaging.ctf import estimate_ctf
from processing.imaging.holes import FoundHole, find_holes
from processing.imaging.squares import FoundSquare, find_squares
from proto.messages import CtfResult


def squares(path: str, fft_workers: int = 1) -> list[FoundSquare]:
    image, _pixel = io.read_image(Path(path))
    return find_squares(image, fft_workers=fft_workers)


def holes(path: str, fft_workers: int = 1) -> list[FoundHole]:
    image, _pixel = io.read_image(Path(path))
    return find_holes(image, fft_workers=fft_workers)


@dataclass(frozen=True)
class ExposureResult:
    ctf: CtfResult | None
    drift_total_a: float | None
    ice_nm: float | None
    thumbnail: Path
    spectrum: Path


def exposure(
    path: str, pixel_size_a: float, dose_e_per_a2: float, fft_workers: int = 1
) -> ExposureResult:
    """Align the frames, estimate the CTF, the ice thickness; write thumbnail and spectrum."""
    from processing.imaging import render
    from processing.imaging.ice import ice_thickness_proxy
    from processing.imaging.motion import align_movie

    movie_path = Path(path)
    frames, header_pixel = io.read_movie(movie_path)
    pixel = header_pixel or pixel_size_a
    motion = align_movie(
        frames,
        pixel_size_a=pixel,
        dose_per_frame_e_per_a2=dose_e_per_a2 / max(1, len(frames)),
        fft_workers=fft_workers,
    )
    summed = motion.summed
    shifts = np.asarray(motion.shifts_px, dtype=np.float64)
    drift = float(np.sum(np.hypot(*np.diff(shifts, axis=0).T))) * pixel if len(shifts) > 1 else 0.0
    ctf = None
    if min(summed.shape) >= 256:
        fit = estimate_ctf(
            summed,
            pixel_size_a=pixel,
            box=min(512, min(summed.shape) // 2 * 2),
            fft_workers=fft_workers,
        )
        ctf = CtfResult(
            defocus1_a=fit.defocus1_a,
            defocus2_a=fit.defocus2_a,
            astig_angle_deg=fit.astig_angle_deg,
            fit_resolution_a=fit.fit_resolution_a,
            cc=fit.cc,
            low_confidence=fit.low_confidence,
        )
    ice = ice_thickness_proxy(summed, pixel_size_a=pixel, dose_e_per_a2=dose_e_per_a2)
    stem = movie_path.with_suffix("")
    thumbnail = stem.with_name(stem.name + "_thumb.png")
    spectrum = stem.with_name(stem.name + "_spectrum.png")
    thumbnail.write_bytes(render.thumbnail_png(summed))
    spectrum.write_bytes(render.spectrum_png(summed, fft_workers=fft_workers))
    return ExposureResult(ctf, drift, ice, thumbnail, spectrum)
