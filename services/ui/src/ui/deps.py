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
    context = {"user": getattr(request.state, "user", None), "nav": "", **context}
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=headers
    )


def render_text(request: Request, template: str, context: dict[str, Any]) -> str:
    """A template rendered to a string (SSE fragments)."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.env.get_template(template).render({"user": None, "nav": "", **context})
