"""Server-sent events: the session page's and the dashboard's live partials and log lines.

Each stream has its own feed (log lines, replayed after a reconnect); the partials come from
the page's shared hub (``ui.hub``): one read and render per burst of events for all streams.
Everything a stream has waiting goes out in one write (``ui.sse``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from jinja2 import Environment

from proto.api import LogLineView
from ui import sse
from ui.auth import COOKIE, User, decode_cookie, login_url
from ui.client import ApiClient, NotLoggedIn
from ui.hub import Batch, Hub, Hubs, ServerClosing, relay
from ui.live import TAIL, Feed, decode_cursor
from ui.metrics import SSE_STREAMS
from ui.partials import RenderedLines
from ui.sources import FacilitySource, SessionSource
from ui.views import FacilityFilter, SessionFilter

log = logging.getLogger(__name__)
router = APIRouter()

RETRY_MS = 1000
"""How soon a browser reconnects a dropped stream."""


def _user(request: Request) -> User | None:
    raw = request.cookies.get(COOKIE)
    return decode_cookie(raw, request.app.state.secret_key) if raw else None


def _login_event(next_url: str) -> bytes:
    # EventSource cannot follow a redirect to HTML: the page's script navigates instead.
    return sse.event("gp-login", login_url(next_url))


def _chunk(batch: Batch, lines: RenderedLines) -> bytes:
    """One write: the batch's log lines (each batch with its cursor as the event id), then
    its parts; a keep-alive comment for an empty batch."""
    if not batch.lines and not batch.parts:
        return sse.PING
    out = [
        sse.event(f"log-{panel}", html, id=item.cursor)
        for item in batch.lines
        for panel, html in lines.by_panel(item.lines).items()
    ]
    out += [sse.event(part, html) for part, html in batch.parts]
    return b"".join(out)


@router.get("/sessions/{session_id}/stream")
async def session_stream(
    request: Request,
    session_id: UUID,
    cursor: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The session page's stream: log lines (with replay) and re-rendered partials."""
    return sse.response(_session_events(request, session_id, last_event_id or cursor))


async def _session_events(
    request: Request, session_id: UUID, cursor: str | None
) -> AsyncIterator[bytes]:
    page = f"/sessions/{session_id}"
    user = _user(request)
    if user is None:
        yield _login_event(page)
        return
    http = request.app.state.http
    api = ApiClient(http, user.token)
    env: Environment = request.app.state.templates.env
    try:
        session = await api.session(session_id)
    except NotLoggedIn:
        yield _login_event(page)
        return

    def make() -> Hub:
        where = SessionFilter(session_id, session.microscope_id)
        return Hub(http, SessionSource(env, session_id, where), f"session {session_id}")

    async def fetch(since: datetime | None) -> list[LogLineView]:
        return await api.log_history(session_id, since=since, tail=None if since else TAIL)

    hubs: Hubs = request.app.state.hubs
    with hubs.joined(("session", session_id), user, make) as (hub, sub):
        assert isinstance(hub.source, SessionSource)
        where = hub.source.where
        if session.run is not None:
            where.run_ids.add(session.run.id)
        feed = Feed(request.app.state.bus, where, fetch, decode_cursor(cursor))
        SSE_STREAMS.inc()
        try:
            yield sse.opening(RETRY_MS)
            async with contextlib.aclosing(relay(feed, hub, sub, sse.PING_S)) as batches:
                async for batch in batches:
                    yield _chunk(batch, request.app.state.lines)
        except NotLoggedIn:
            yield _login_event(page)
        except ServerClosing:
            return
        finally:
            SSE_STREAMS.dec()


@router.get("/stream/facility")
async def facility_stream(request: Request) -> StreamingResponse:
    """The dashboard's stream: a card re-rendered whenever its microscope changes."""
    return sse.response(_facility_events(request))


async def _facility_events(request: Request) -> AsyncIterator[bytes]:
    user = _user(request)
    if user is None:
        yield _login_event("/")
        return
    http = request.app.state.http
    env: Environment = request.app.state.templates.env
    try:
        await ApiClient(http, user.token).me()
    except NotLoggedIn:
        yield _login_event("/")
        return

    def make() -> Hub:
        return Hub(http, FacilitySource(env, FacilityFilter()), "dashboard")

    hubs: Hubs = request.app.state.hubs
    with hubs.joined(("facility",), user, make) as (hub, sub):
        assert isinstance(hub.source, FacilitySource)
        feed = Feed(request.app.state.bus, hub.source.where)
        SSE_STREAMS.inc()
        try:
            yield sse.opening(RETRY_MS)
            async with contextlib.aclosing(relay(feed, hub, sub, sse.PING_S)) as batches:
                async for batch in batches:
                    cards = [(p.replace("card:", "card-", 1), html) for p, html in batch.parts]
                    yield _chunk(Batch([], cards), request.app.state.lines)
        except NotLoggedIn:
            yield _login_event("/")
        except ServerClosing:
            return
        finally:
            SSE_STREAMS.dec()
