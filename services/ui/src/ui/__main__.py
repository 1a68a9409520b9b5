"""``python -m ui``: the ui service on ``UI_HOST``:``UI_PORT``."""

from __future__ import annotations

import logging

import uvicorn

from ui.app import create_app
from ui.server import Server
from ui.settings import UiSettings


def main() -> None:
    settings = UiSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(settings, freeze_heap=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=3,
        proxy_headers=True,
    )
    Server(config, app).run()


if __name__ == "__main__":
    main()
