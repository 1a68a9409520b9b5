"""A microscope's optics and the detector its exposures are recorded on.

Part of each microscope's configuration (acquisition) and carried on every
``ExposureAcquired``, so that processing fits the CTF and weights the dose with the optics the
movie was really taken with, and can cross-check them against the file's own header.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FrameFormat = Literal["mrc", "tiff", "eer"]
GainFlip = Literal["none", "upside_down", "left_right"]


class Optics(BaseModel):
    """The electron optics of a microscope."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    voltage_kv: float = Field(300.0, gt=0, le=1000)
    """Accelerating voltage (kV): 300 on a Krios, 200 on a Glacios or Arctica."""
    cs_mm: float = Field(2.7, ge=0, le=20)
    """Spherical aberration of the objective lens (mm); about 0 with a Cs corrector."""
    amplitude_contrast: float = Field(0.07, ge=0, lt=1)
    """Fraction of amplitude contrast (0.07–0.1 for vitreous ice)."""


class Detector(BaseModel):
    """The camera exposures are recorded on, and how its frames are written."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field("camera", min_length=1, max_length=120)
    pixel_size_a: float = Field(1.0, gt=0, le=100)
    """Pixel size at the exposure magnification (Å), as written in the movie."""
    frame_format: FrameFormat = "mrc"
    """How movies are written: MRC stacks, TIFF stacks (K3, Falcon) or EER (Falcon 4/4i)."""
    gain_reference: str | None = None
    """A gain reference (MRC or TIFF) as the services see it; multiplied into every frame
    (counting cameras that write gain-uncorrected movies), or ``None`` when the movies are
    gain-corrected already."""
    gain_rotation: Literal[0, 90, 180, 270] = 0
    """Rotate the gain reference counter-clockwise by this many degrees (MotionCor2's
    ``-RotGain`` × 90) before applying it."""
    gain_flip: GainFlip = "none"
    """Then flip it (MotionCor2's ``-FlipGain``: 1 upside down, 2 left-right)."""
    eer_fraction_dose_e_per_a2: float = Field(1.0, gt=0, le=20)
    """EER only: raw frames are grouped into fractions of about this dose (e/Å²)."""
    eer_grouping: int | None = Field(None, ge=1)
    """EER only: raw frames per fraction, when set (overrides the dose-based choice)."""
