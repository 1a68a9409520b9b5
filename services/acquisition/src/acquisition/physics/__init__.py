"""Image physics for the simulated microscope and the benchmarks, with ground truth.

Deterministic for a seed. Public entry points: ``simulate_micrograph``, ``simulate_movie``,
``simulate_atlas``, ``simulate_square`` and ``write_simulated_mrc``.
"""

from acquisition.physics.atlas import MESHES, SQUARE_CLASSES, simulate_atlas
from acquisition.physics.ctf import MEAN_FREE_PATH_NM, TIERS, Tier, simulate_micrograph
from acquisition.physics.movie import simulate_movie
from acquisition.physics.mrc import write_simulated_mrc
from acquisition.physics.square import HOLE_CLASSES, PATTERNS, simulate_square
from acquisition.physics.truth import (
    AtlasTruth,
    CtfTruth,
    HoleTruth,
    MicrographTruth,
    MovieTruth,
    SquareImageTruth,
    SquareTruth,
)

__all__ = [
    "HOLE_CLASSES",
    "MEAN_FREE_PATH_NM",
    "MESHES",
    "PATTERNS",
    "SQUARE_CLASSES",
    "TIERS",
    "AtlasTruth",
    "CtfTruth",
    "HoleTruth",
    "MicrographTruth",
    "MovieTruth",
    "SquareImageTruth",
    "SquareTruth",
    "Tier",
    "simulate_atlas",
    "simulate_micrograph",
    "simulate_movie",
    "simulate_square",
    "write_simulated_mrc",
]
