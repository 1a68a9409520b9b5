"""Reaching the real RabbitMQ and PostgreSQL. A missing broker fails the test, never skips it."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

from proto.settings import AmqpSettings

HINT = "run `make test` (it starts or installs RabbitMQ) or set AMQP_URL"


def amqp_settings() -> AmqpSettings:
    return AmqpSettings()


def require_rabbitmq() -> AmqpSettings:
    """Settings for the broker at ``AMQP_URL``; fails the test when nothing listens there."""
    settings = amqp_settings()
    parts = urlsplit(settings.url.get_secret_value())
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"RabbitMQ is not reachable at {host}:{port} ({exc}); {HINT}", pytrace=False)
    return settings


POSTGRES_URL = os.environ.get(
    "POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def delete_namespace(namespace: str) -> None:
    """Remove every queue and exchange whose name starts with ``<namespace>.`` (management API)."""
    from urllib.parse import quote

    import httpx

    settings = amqp_settings()
    vhost = quote(settings.vhost, safe="")
    with httpx.Client(base_url=settings.management_url, auth=settings.credentials, timeout=10) as c:
        for kind in ("queues", "exchanges"):
            for item in c.get(f"/api/{kind}/{vhost}").json():
                if item["name"].startswith(f"{namespace}."):
                    c.delete(f"/api/{kind}/{vhost}/{quote(item['name'], safe='')}")
