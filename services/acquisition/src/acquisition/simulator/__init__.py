"""The simulated microscope: deterministic synthetic atlases, squares and movies."""

from acquisition.simulator.scope import Faults, SimulatedMicroscope, SimulatorConfig

__all__ = ["Faults", "SimulatedMicroscope", "SimulatorConfig"]
