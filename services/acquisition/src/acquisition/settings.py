"""acquisition settings, from the environment (``ACQUISITION_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from acquisition.simulator import SimulatorConfig


def _default_scopes() -> list[SimulatorConfig]:
    return [
        SimulatorConfig(id="krios-1", name="Krios G4 (simulated)", seed=11),
        SimulatorConfig(id="glacios-1", name="Glacios (simulated)", seed=23),
    ]


class AcquisitionSettings(BaseSettings):
    """``ACQUISITION_MICROSCOPES`` is a JSON list of simulator configurations."""

    model_config = SettingsConfigDict(env_prefix="ACQUISITION_", extra="ignore")

    data_root: Path = Path("var/data")
    microscopes: list[SimulatorConfig] = Field(default_factory=_default_scopes)
    run_mode: Literal["process", "task"] = "process"
    """Each run in its own child process and process group (deployments), or as a task of
    this process (the embedded demo, where the in-memory bus cannot cross processes)."""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9101
    finder_timeout_s: float = Field(120.0, gt=0)
    heartbeat_s: float = Field(2.0, gt=0)
    squares_per_grid: int = Field(3, ge=0)
    holes_per_square: int = Field(4, ge=0)
    report_interval_s: float = Field(5.0, gt=0)
    worker_heartbeat_s: float = Field(10.0, gt=0)
    """How often the service tells the operations page it is alive."""
    log_level: str = "INFO"
