"""acquisition settings, from the environment (``ACQUISITION_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from acquisition.config import MicroscopeConfig, default_microscopes, load_microscopes


class AcquisitionSettings(BaseSettings):
    """The microscopes come from ``ACQUISITION_MICROSCOPES_FILE`` (a TOML file, see
    :mod:`acquisition.config`), else from ``ACQUISITION_MICROSCOPES`` (a JSON list of the same
    tables), else the demo's two simulated scopes."""

    model_config = SettingsConfigDict(env_prefix="ACQUISITION_", extra="ignore")

    data_root: Path = Path("var/data")
    microscopes_file: Path | None = None
    microscopes: list[MicroscopeConfig] = Field(default_factory=default_microscopes)
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

    @model_validator(mode="after")
    def _read_microscopes_file(self) -> AcquisitionSettings:
        """The file, when named, is the configuration (raises ``ConfigError`` naming the
        field); it is read once, here, and the run processes get what was read."""
        if self.microscopes_file is not None:
            self.microscopes = load_microscopes(self.microscopes_file)
            self.microscopes_file = None
        return self
