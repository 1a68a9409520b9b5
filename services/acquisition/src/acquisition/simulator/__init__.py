"""The simulated microscope: deterministic synthetic atlases, squares and movies."""

from acquisition.simulator.scope import SimulatedMicroscope
from acquisition.simulator.settings import Faults, SimulatorSettings

__all__ = ["Faults", "SimulatedMicroscope", "SimulatorSettings"]
