"""session-api settings, from the environment; built in ``main``, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-not-secret"
KEEP = ("", "keep", "never", "none")


def _days(value: Any) -> Any:
    """``keep`` (or ``never``, ``none``, empty) means rows of that kind are never retired."""
    if value is None or (isinstance(value, str) and value.strip().lower() in KEEP):
        return None
    return value


Days = Annotated[Annotated[float, Field(gt=0)] | None, BeforeValidator(_days)]
"""Days a kind of row stays in the database before it is archived and deleted."""


class NotifySettings(BaseSettings):
    """``SESSION_API_NOTIFY_*``: how notifications are coalesced, rate-limited and retried,
    and the thresholds of the events that are not single messages on the bus."""

    model_config = SettingsConfigDict(env_prefix="SESSION_API_NOTIFY_", extra="ignore")

    coalesce_s: float = Field(10.0, ge=0)
    """A burst: notices for one destination within this long go out as one message."""
    min_interval_s: float = Field(60.0, ge=0)
    """Rate limit: at most one message per destination this often (the rest wait, merged)."""
    retries: int = Field(2, ge=0, le=10)
    """A failed message is tried again this many times, then its notices are dropped."""
    retry_s: float = Field(30.0, ge=0)
    """Wait before the first retry; doubled for each further one."""
    timeout_s: float = Field(8.0, gt=0)
    """One delivery attempt (and a *Send test*) gives up after this long."""
    queue_size: int = Field(1000, ge=1)
    """Projected events waiting for the notifier; beyond it they are dropped and counted."""
    max_pending: int = Field(200, ge=1)
    """Notices one destination keeps waiting; beyond it the oldest are dropped."""
    max_destinations: int = Field(10, ge=1)
    """Destinations per user."""
    failures_n: int = Field(5, ge=1)
    failures_minutes: float = Field(10.0, gt=0)
    """*Processing failures*: more than ``failures_n`` exposures of a run failed within this."""
    silent_s: float = Field(60.0, gt=0)
    """*Run silent*: a live run sent no heartbeat for this long (hung, or cut off)."""
    stalled_s: float = Field(1800.0, gt=0)
    """*Run silent* too: a running run made no progress (no image, no grid, no state
    change) for this long."""
    watch_interval_s: float = Field(5.0, gt=0)
    """How often live runs are checked for silence."""
    base_url: str | None = None
    """The ui's address as people reach it (``https://gridpilot.example.org``): messages link
    to the session page. Without it they carry no link."""


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
    notify: NotifySettings = Field(default_factory=lambda: NotifySettings())
    max_body_bytes: int = Field(1_048_576, ge=1024)
    """A request body over this many bytes gets 413 before any other work."""
    archive_dir: Path = Path("var/archive")
    """Where retention writes the rows it takes out (a data volume; ``gridpilot archive``)."""
    retain_log_lines_days: Days = 30
    retain_processed_days: Days = 2
    """Projected message ids, kept to drop a redelivered event: a broker redelivers within
    minutes, a dead letter replayed by staff within days."""
    retain_targets_days: Days = 30
    """Squares and holes never imaged, of sessions whose newest run ended this long ago."""
    retain_audit_days: Days = None
    """The audit log is kept unless this is set."""
    retain_exposures_days: Days = None
    """Exposure results (of sessions whose newest run ended this long ago) are kept unless
    this is set."""
    archive_processed: bool = False
    """Message ids say nothing once their events are projected: deleted without a file."""
    retention_interval_s: float = Field(600.0, gt=0)
    retention_batch: int = Field(1000, ge=1, le=10_000)
    """Rows per statement and per deleting transaction."""

    def require_secret(self) -> None:
        """Deployments must set a real secret; only the embedded demo may use the dev one."""
        if self.secret_key.get_secret_value() in ("", DEV_SECRET):
            raise SystemExit("GRIDPILOT_SECRET_KEY must be set to a real secret")
