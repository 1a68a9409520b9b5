"""What the handlers run in a worker thread: file in, numbers and PNGs out.

Only :mod:`processing.io` touches MRC files; the numerics are :mod:`processing.imaging`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processing import io
from processing.imaging.holes import FoundHole, find_holes
from processing.imaging.squares import FoundSquare, find_squares
from proto.errors import CorruptImage
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
    """Align the frames, estimate the CTF, the ice thickness; write thumbnail and spectrum.

    The movie is memory-mapped and transformed frame by frame; everything after the
    alignment works from the Fourier transform of the aligned sum (the ice from its zero
    frequency, the CTF and the spectrum PNG from its binned periodogram, the thumbnail from
    its central crop), so the full-size sum is never made in real space.

    Raises:
        CorruptImage: for an unreadable movie, or one with NaN or infinite values.
        ValueError: for a movie or arguments the numerics reject.
    """
    from processing.imaging import render
    from processing.imaging.ctf import estimate_ctf_from_power
    from processing.imaging.ice import ice_thickness_nm
    from processing.imaging.motion import NonFiniteFrame, align_movie
    from processing.imaging.spectrum import binned_power

    movie_path = Path(path)
    with io.open_movie(movie_path) as movie:
        pixel = movie.info.pixel_size_a or pixel_size_a
        frames = movie.frames
        if not pixel > 0 or not dose_e_per_a2 > 0:
            raise ValueError("pixel_size_a and dose_e_per_a2 must be positive")
        try:
            motion = align_movie(
                frames,
                pixel_size_a=pixel,
                dose_per_frame_e_per_a2=dose_e_per_a2 / max(1, len(frames)),
                fft_workers=fft_workers,
                real_space_sum=False,
            )
        except NonFiniteFrame as exc:
            raise CorruptImage(str(movie_path), str(exc)) from exc
    spec, shape = motion.spectrum, motion.shape
    shifts = np.asarray(motion.shifts_px, dtype=np.float64)
    drift = float(np.sum(np.hypot(*np.diff(shifts, axis=0).T))) * pixel if len(shifts) > 1 else 0.0
    # The power spectra of the CTF fit and the PNG, on the tile grids they had (512 px and,
    # for the PNG, at least four tiles); one spectrum serves both when the grids agree.
    box = min(512, min(shape) // 2 * 2)
    display = min(512, 2 * (min(shape) // 4))
    power = binned_power(spec, shape, display)
    ctf = None
    if min(shape) >= 256:
        fit_power = power if box == display else binned_power(spec, shape, box)
        fit = estimate_ctf_from_power(fit_power, pixel_size_a=pixel)
        ctf = CtfResult(
            defocus1_a=fit.defocus1_a,
            defocus2_a=fit.defocus2_a,
            astig_angle_deg=fit.astig_angle_deg,
            fit_resolution_a=fit.fit_resolution_a,
            cc=fit.cc,
            low_confidence=fit.low_confidence,
        )
    # as ice_thickness_proxy: the mean counts of the sum against the dose on vacuum
    mean = float(spec[0, 0].real) / (shape[0] * shape[1])
    ice = ice_thickness_nm(mean, dose_e_per_a2 * pixel**2)
    stem = movie_path.with_suffix("")
    thumbnail = stem.with_name(stem.name + "_thumb.png")
    spectrum = stem.with_name(stem.name + "_spectrum.png")
    thumbnail.write_bytes(render.thumbnail_from_spectrum_png(spec, shape))
    spectrum.write_bytes(render.power_png(power))
    return ExposureResult(ctf, drift, ice, thumbnail, spectrum)
