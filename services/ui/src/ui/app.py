"""The ui app: pages, partials, live streams, health and metrics; the lifespan owns the bus."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proto.asgi import BodyLimit
from proto.bus.base import Bus
from proto.runtime import freeze_startup_heap
from ui import csrf
from ui.auth import COOKIE, LoginRequired, login_url
from ui.client import ApiError, NotLoggedIn, Rejected, field_errors
from ui.deps import is_htmx, render, to_messages
from ui.hub import Hubs
from ui.metrics import UiBusObserver
from ui.partials import RenderedLines
from ui.render import make_templates
from ui.routes import (
    actions,
    browse,
    facility,
    login,
    notifications,
    operations,
    session,
    setup,
    stream,
)
from ui.settings import DEV_SECRET_KEY, UiSettings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def create_app(
    settings: UiSettings,
    bus: Bus | None = None,
    *,
    api_transport: httpx.AsyncBaseTransport | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The ui. A given ``bus`` must already be entered (its owner runs it); without one the
    lifespan connects an ``AmqpBus``. ``api_transport`` replaces the network (tests).
    ``freeze_heap``: the process serves this app for good (``python -m ui``, the demo):
    freeze the start-up heap once it is up (``proto.runtime``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.secret_key.get_secret_value() == DEV_SECRET_KEY:
            log.warning("GRIDPILOT_SECRET_KEY is the development default; set your own")
        async with AsyncExitStack() as stack:
            app.state.http = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=settings.session_api_url,
                    transport=api_transport,
                    timeout=settings.api_timeout_s,
                )
            )
            if bus is None:
                from proto.bus.amqp import AmqpBus
                from proto.settings import AmqpSettings

                owned = AmqpBus(AmqpSettings(), service="ui", observer=UiBusObserver())
                app.state.bus = await stack.enter_async_context(owned)
            else:
                app.state.bus = bus
            app.state.ready = True
            if freeze_heap:
                freeze_startup_heap()
            try:
                yield
            finally:
                app.state.ready = False

    app = FastAPI(
        title="Gridpilot",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(csrf.guard)],  # every route, also those added later
    )
    app.state.settings = settings
    app.state.trusted_origins = frozenset(
        o for o in (csrf.normal_origin(x) for x in settings.trusted_origins) if o
    )
    app.state.secret_key = settings.secret_key.get_secret_value()
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.templates = make_templates()
    app.state.hubs = Hubs()
    app.state.lines = RenderedLines(app.state.templates.env)
    app.state.ready = False
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # setup before session: /sessions/new is not a session id
    modules = (login, facility, setup, session, actions, stream, browse, operations, notifications)
    for module in modules:
        app.include_router(module.router)
    _health(app)
    _errors(app)
    return app


def _health(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> PlainTextResponse:
        if not request.app.state.ready:
            return PlainTextResponse("bus not connected", status_code=503)
        return PlainTextResponse("ready")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _to_login(request: Request, next_url: str) -> Response:
    target = login_url(next_url)
    if is_htmx(request):
        response: Response = Response(status_code=401, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _errors(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return _to_login(request, exc.next_url)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if isinstance(exc, NotLoggedIn):
            page = request.headers.get("HX-Current-URL")
            path = request.url.path if page is None else httpx.URL(page).raw_path.decode()
            return _to_login(request, path)
        return _error_answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # a bad path, query or form value (a hand-typed URL, a forged form): refused as
        # session-api's 422 is, not FastAPI's JSON (htmx would swap that into the page)
        return _error_answer(request, Rejected(field_errors(exc.errors()), 422))


def _error_answer(request: Request, exc: ApiError) -> Response:
    """The error page, or for htmx the message the page shows in its message area.

    To htmx a refusal (4xx) is answered 200: the answer *is* the message to show, and a 4xx
    status is reported as an error in the browser's console ("Failed to load resource",
    htmx's "Response Status Error Code 409") though nothing went wrong. What the status was
    is in ``Gridpilot-Status``. A 5xx stays one: then something did go wrong, and so does the
    403 of a request refused as not sent by a Gridpilot page (``ui.csrf``)."""
    status = exc.status or 502
    if not is_htmx(request):
        return render(request, "pages/error.html", {"error": exc}, status_code=status)
    headers = to_messages(request)
    if status < 500 and not exc.cross_site:  # a forged request gets its 403 as it is
        headers["Gridpilot-Status"] = str(status)
        status = 200
    return render(
        request, "partials/_message.html", {"error": exc}, status_code=status, headers=headers
    )
