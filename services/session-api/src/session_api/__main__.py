"""``python -m session_api``: serve the API against RabbitMQ and ``DATABASE_URL``."""

from __future__ import annotations

import logging

import uvicorn

from session_api.app import create_app
from session_api.settings import ApiSettings


def main() -> None:
    settings = ApiSettings()
    settings.require_secret()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings, freeze_heap=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
