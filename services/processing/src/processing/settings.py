"""processing settings, from the environment (``PROCESSING_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProcessingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROCESSING_", extra="ignore")

    data_root: Path = Path("var/data")
    fft_threads: int = Field(1, ge=1)
    """scipy.fft worker threads per job."""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9102
    log_level: str = "INFO"
    backlog_interval_s: float = Field(5.0, gt=0)
    """How often a worker reads the queue depth into its backlog gauge."""
    worker_heartbeat_s: float = Field(10.0, gt=0)
    """How often a worker tells the operations page it is alive."""
