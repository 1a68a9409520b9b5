"""Settings of the ui service: where it listens, where session-api is, the cookie key."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "gridpilot-ui-dev-secret-change-me"
"""The development default; the launcher passes a random key, deployments their own."""


class UiSettings(BaseSettings):
    """``UI_HOST``, ``UI_PORT``; ``SESSION_API_URL`` and ``GRIDPILOT_SECRET_KEY`` un-prefixed."""

    model_config = SettingsConfigDict(env_prefix="UI_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    session_api_url: str = Field(
        "http://127.0.0.1:8001",
        validation_alias=AliasChoices("SESSION_API_URL", "session_api_url"),
    )
    secret_key: SecretStr = Field(
        SecretStr(DEV_SECRET_KEY),
        validation_alias=AliasChoices("GRIDPILOT_SECRET_KEY", "secret_key"),
    )
    cookie_secure: bool = False
    """Mark the login cookie ``Secure`` (set behind HTTPS)."""
    trusted_origins: list[str] = Field(default_factory=list)
    """Origins besides the ui's own (``scheme://host[:port]``) whose pages may send it
    state-changing requests: only for a proxy that rewrites ``Host``."""
    api_timeout_s: float = Field(10.0, gt=0)
    max_body_bytes: int = Field(65_536, ge=1024)
    """A request body over this many bytes gets 413 before any other work (forms are small)."""
    log_level: str = "INFO"
