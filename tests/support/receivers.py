"""Real receivers for notifications: an SMTP server (aiosmtpd) and an HTTP webhook endpoint,
each on a free loopback port, recording what arrives so a test can wait for it."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from browser.helpers import free_port, serve
from fastapi import FastAPI, Request, Response

FROM = "gridpilot@example.org"


@dataclass
class Arrival:
    at: float
    """``time.monotonic()`` when it arrived."""


@dataclass
class Mail(Arrival):
    message: EmailMessage
    to: list[str]

    @property
    def subject(self) -> str:
        return str(self.message["subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())


@dataclass
class Post(Arrival):
    path: str
    body: dict[str, Any]
    authorization: str | None


class _Waitable:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Condition()

    async def _add(self, item: Any) -> None:
        async with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    async def wait(self, n: int = 1, timeout: float = 30) -> list[Any]:
        """The first ``n`` arrivals, once there are that many."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.items) >= n)
        return self.items[:n]


class MailInbox(_Waitable):
    """aiosmtpd's ``Controller``: a real SMTP server in its own thread and loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def url(self, to: str = "operator@example.org") -> str:
        return f"mailto://127.0.0.1:{self.port}?from={FROM}&to={to}&secure=no"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mail = Mail(time.monotonic(), message, list(envelope.rcpt_tos))
        asyncio.run_coroutine_threadsafe(self._add(mail), self._loop)
        return "250 OK"

    async def wait_mail(self, n: int = 1, timeout: float = 30) -> list[Mail]:
        return await self.wait(n, timeout)


@dataclass
class Webhook(_Waitable):
    """A FastAPI app under uvicorn: ``POST /<path>`` records the JSON body; ``fail`` makes it
    answer 500; while ``gate`` is clear it holds each request open after recording it."""

    port: int = field(default_factory=free_port)
    fail: bool = False
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        super().__init__()
        self.gate.set()

    def url(self, path: str = "hook", auth: str = "") -> str:
        return f"json://{auth}127.0.0.1:{self.port}/{path}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def hook(path: str, request: Request) -> Response:
            body = await request.json()
            await self._add(
                Post(time.monotonic(), path, body, request.headers.get("authorization"))
            )
            await self.gate.wait()
            return Response(status_code=500 if self.fail else 200)

        return app

    async def wait_posts(self, n: int = 1, timeout: float = 30) -> list[Post]:
        return await self.wait(n, timeout)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@asynccontextmanager
async def mail_inbox() -> AsyncIterator[MailInbox]:
    inbox = MailInbox(asyncio.get_running_loop())
    await asyncio.to_thread(inbox.controller.start)
    try:
        yield inbox
    finally:
        await asyncio.to_thread(inbox.controller.stop)


@asynccontextmanager
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    async with serve(hook.app(), hook.port):
        try:
            yield hook
        finally:
            hook.gate.set()
