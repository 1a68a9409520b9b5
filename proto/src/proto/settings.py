"""Settings shared by every service: where the broker is."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AmqpSettings(BaseSettings):
    """``AMQP_URL``, ``AMQP_MANAGEMENT_URL``, ``AMQP_PREFETCH``, ``AMQP_LEASE_HEARTBEAT``."""

    model_config = SettingsConfigDict(env_prefix="AMQP_", extra="ignore")

    url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    management_url: str = "http://127.0.0.1:15672"
    prefetch: int = Field(8, ge=1)
    heartbeat: int = Field(30, ge=1)
    lease_heartbeat: int = Field(5, ge=1)
    publish_retry_s: float = Field(10.0, ge=0)
    """How long a publish waits for a lost connection to come back before it fails."""
    namespace: str = ""
    """Prefix of every exchange and queue name (empty in production; tests isolate with it)."""

    @property
    def vhost(self) -> str:
        path = urlsplit(self.url.get_secret_value()).path.lstrip("/")
        return path or "/"

    @property
    def credentials(self) -> tuple[str, str]:
        parts = urlsplit(self.url.get_secret_value())
        return parts.username or "guest", parts.password or "guest"
