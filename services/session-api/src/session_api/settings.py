"""session-api settings, from the environment; built in ``main``, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-not-secret"


class ApiSettings(BaseSettings):
    """``SESSION_API_*`` plus ``DATABASE_URL`` and ``GRIDPILOT_SECRET_KEY``."""

    model_config = SettingsConfigDict(env_prefix="SESSION_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8001
    database_url: str = Field(
        "sqlite+aiosqlite:///var/gridpilot.db",
        validation_alias=AliasChoices("DATABASE_URL", "SESSION_API_DATABASE_URL"),
    )
    secret_key: SecretStr = Field(
        SecretStr(DEV_SECRET),
        validation_alias=AliasChoices("GRIDPILOT_SECRET_KEY", "SESSION_API_SECRET_KEY"),
    )
    token_hours: float = Field(12.0, gt=0)
    heartbeat_timeout_s: float = Field(10.0, gt=0)
    """A live run without a heartbeat for this long is checked against its lease."""
    start_timeout_s: float = Field(30.0, gt=0)
    reconcile_interval_s: float = Field(2.0, gt=0)
    data_roots: list[Path] = Field(default_factory=lambda: [Path("var/data")])
    """Images are served only from under these folders."""
    log_level: str = "INFO"
    cookie_secure: bool = False

    def require_secret(self) -> None:
        """Deployments must set a real secret; only the embedded demo may use the dev one."""
        if self.secret_key.get_secret_value() in ("", DEV_SECRET):
            raise SystemExit("GRIDPILOT_SECRET_KEY must be set to a real secret")
