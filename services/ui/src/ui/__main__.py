"""``python -m ui``: the ui service on ``UI_HOST``:``UI_PORT``."""

from __future__ import annotations

import logging

import uvicorn

from ui.app import create_app
from ui.settings import UiSettings


def main() -> None:
    settings = UiSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=3,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
