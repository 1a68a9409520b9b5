"""Pure numpy/scipy imaging core: finders, CTF, motion, ice and rendering (no file I/O).

Every heavy function takes ``fft_workers`` (scipy.fft threads).
"""

from processing.imaging.ctf import CtfFit, estimate_ctf
from processing.imaging.ctf_model import Optics
from processing.imaging.holes import HOLE_CLASSES, FoundHole, find_holes
from processing.imaging.ice import DEFAULT_MFP_NM, ice_thickness_nm, ice_thickness_proxy
from processing.imaging.motion import MotionResult, align_movie
from processing.imaging.render import power_spectrum_png, thumbnail_png
from processing.imaging.squares import SQUARE_CLASSES, FoundSquare, find_squares

__all__ = [
    "DEFAULT_MFP_NM",
    "HOLE_CLASSES",
    "SQUARE_CLASSES",
    "CtfFit",
    "FoundHole",
    "FoundSquare",
    "MotionResult",
    "Optics",
    "align_movie",
    "estimate_ctf",
    "find_holes",
    "find_squares",
    "ice_thickness_nm",
    "ice_thickness_proxy",
    "power_spectrum_png",
    "thumbnail_png",
]
