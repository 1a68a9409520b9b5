"""uvicorn's server for the ui: it ends the pages' streams as soon as it shuts down.

The streams never end by themselves, so plain uvicorn waited out its graceful timeout, then
logged an error (``timeout graceful shutdown exceeded``) with a traceback per stream while it
cancelled them: at every restart with pages open. Ended, each page reconnects after a second
(``RETRY_MS``) with its cursor, to another replica or to this one restarted.
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from ui.hub import Hubs


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.hubs: Hubs = app.state.hubs

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hubs.close()
        await super().shutdown(sockets)
