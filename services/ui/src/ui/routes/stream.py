"""Server-sent events: the session page's and the dashboard's live partials and log lines."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from jinja2 import Environment

from proto.api import LogLineView, QueueView
from proto.messages.image import QueueUpdated
from ui.auth import COOKIE, User, decode_cookie, login_url
from ui.client import ApiClient, ApiError, NotLoggedIn
from ui.live import TAIL, Changed, Feed, LogLines, decode_cursor
from ui.metrics import SSE_EVENTS, SSE_STREAMS
from ui.partials import SESSION_TEMPLATES, log_lines, scope_card, session_part
from ui.views import FacilityFilter, SessionContext, SessionFilter, load_session

log = logging.getLogger(__name__)
router = APIRouter()

RETRY_MS = 1000
"""How soon a browser reconnects a dropped stream."""


def _user(request: Request) -> User | None:
    raw = request.cookies.get(COOKIE)
    return decode_cookie(raw, request.app.state.secret_key) if raw else None


def _login_event(next_url: str) -> ServerSentEvent:
    # EventSource cannot follow a redirect to HTML: the page's script navigates instead.
    return ServerSentEvent(event="gp-login", raw_data=login_url(next_url))


def _event(name: str, html: str, id: str | None = None) -> ServerSentEvent:
    SSE_EVENTS.labels(kind=name.split("-")[0]).inc()
    return ServerSentEvent(event=name, raw_data=html, id=id)


@router.get("/sessions/{session_id}/stream", response_class=EventSourceResponse)
async def session_stream(
    request: Request,
    session_id: UUID,
    cursor: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The session page's stream: log lines (with replay) and re-rendered partials."""
    page = f"/sessions/{session_id}"
    user = _user(request)
    if user is None:
        yield _login_event(page)
        return
    api = ApiClient(request.app.state.http, user.token)
    env: Environment = request.app.state.templates.env
    try:
        session = await api.session(session_id)
    except NotLoggedIn:
        yield _login_event(page)
        return
    runs = {session.run.id} if session.run else set()
    where = SessionFilter(session_id, session.microscope_id, runs)

    async def fetch(since: datetime | None) -> list[LogLineView]:
        return await api.log_history(session_id, since=since, tail=None if since else TAIL)

    feed = Feed(request.app.state.bus, where, fetch, decode_cursor(last_event_id or cursor))
    SSE_STREAMS.inc()
    try:
        yield ServerSentEvent(comment="connected", retry=RETRY_MS)
        async for item in feed.items():
            if isinstance(item, LogLines):
                for panel, html in log_lines(env, item.lines).items():
                    yield _event(f"log-{panel}", html, id=item.cursor)
                continue
            try:
                for name, html in await _session_parts(api, session_id, user, env, item):
                    yield _event(name, html)
            except NotLoggedIn:
                yield _login_event(page)
                return
            except ApiError as exc:
                log.warning("could not refresh session %s: %s", session_id, exc.detail)
    finally:
        SSE_STREAMS.dec()


async def _session_parts(
    api: ApiClient, session_id: UUID, user: User, env: Environment, item: Changed
) -> list[tuple[str, str]]:
    parts = (
        set(SESSION_TEMPLATES) if "*" in item.parts else set(item.parts) & set(SESSION_TEMPLATES)
    )
    if not parts:
        return []
    queued = [m for m in item.messages if isinstance(m, QueueUpdated)]
    fetch = frozenset(parts - {"queue"} if queued else parts) or frozenset({"process"})
    ctx = await load_session(api, session_id, user, fetch)
    if queued and "queue" in parts:
        last = queued[-1]
        view = QueueView(run_id=last.run_id, items=list(last.items), counts=dict(last.counts))
        ctx = SessionContext(ctx.session, ctx.user, ctx.microscope, view)
    return [(part, session_part(env, part, ctx)) for part in sorted(parts)]


@router.get("/stream/facility", response_class=EventSourceResponse)
async def facility_stream(request: Request) -> AsyncIterator[ServerSentEvent]:
    """The dashboard's stream: a card re-rendered whenever its microscope changes."""
    user = _user(request)
    if user is None:
        yield _login_event("/")
        return
    api = ApiClient(request.app.state.http, user.token)
    env: Environment = request.app.state.templates.env
    where = FacilityFilter()
    feed = Feed(request.app.state.bus, where)
    SSE_STREAMS.inc()
    try:
        yield ServerSentEvent(comment="connected", retry=RETRY_MS)
        async for item in feed.items():
            if not isinstance(item, Changed):
                continue
            try:
                scopes = await api.microscopes()
            except NotLoggedIn:
                yield _login_event("/")
                return
            except ApiError as exc:
                log.warning("could not refresh the dashboard: %s", exc.detail)
                continue
            for scope in scopes:
                if scope.run is not None:
                    where.run_scopes[scope.run.id] = scope.id
                if "*" in item.parts or f"card:{scope.id}" in item.parts:
                    yield _event(f"card-{scope.id}", scope_card(env, scope))
    finally:
        SSE_STREAMS.dec()
