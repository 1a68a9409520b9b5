"""Request dependencies: the session-api client for the logged-in user, templates, bus."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from proto.bus.base import Bus
from ui.auth import User, current_user
from ui.client import ApiClient
from ui.csrf import token_for


def get_api(request: Request, user: Annotated[User, Depends(current_user)]) -> ApiClient:
    http: httpx.AsyncClient = request.app.state.http
    return ApiClient(http, user.token)


def get_bus(request: Request) -> Bus:
    bus: Bus = request.app.state.bus
    return bus


ApiDep = Annotated[ApiClient, Depends(get_api)]
BusDep = Annotated[Bus, Depends(get_bus)]


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def to_messages(request: Request) -> dict[str, str]:
    """Headers that put an htmx answer into the page's message area (``#messages``).

    The buttons of live parts name ``#messages`` as their target themselves, which htmx
    resolves when the button is pressed: the stream may redraw the part that holds the button
    before the answer arrives, and a ``HX-Retarget`` is looked up from the button, by then
    detached from the page (htmx finds nothing and reports an error). Other requests are
    retargeted."""
    headers = {"HX-Reswap": "innerHTML"}
    if request.headers.get("HX-Target") != "messages":
        headers["HX-Retarget"] = "#messages"
    return headers


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render ``template`` with the request and the user (if any) in its context."""
    templates: Jinja2Templates = request.app.state.templates
    user = getattr(request.state, "user", None)
    csrf = token_for(user, request.app.state.secret_key) if user is not None else ""
    context = {"user": user, "nav": "", "csrf": csrf, **context}
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=headers
    )


def render_text(request: Request, template: str, context: dict[str, Any]) -> str:
    """A template rendered to a string (SSE fragments)."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.env.get_template(template).render({"user": None, "nav": "", **context})
