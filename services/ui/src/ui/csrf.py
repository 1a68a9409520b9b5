"""Cross-site request forgery: what makes a state-changing request the user's own.

The login cookie is ``SameSite=Lax``, which does not stop a page on *another port of the same
host* (Grafana, Prometheus, the broker's management UI) or a sibling subdomain: those are
same-site. So every unsafe request (POST, PUT, PATCH, DELETE) must pass two checks, in the
app-wide dependency :func:`guard`:

1. it comes from this origin: ``Sec-Fetch-Site`` (when the browser sends it) is
   ``same-origin`` (or ``none``: the user's own action, e.g. a bookmark), and ``Origin`` (when
   sent) is this server's own origin or one of ``UI_TRUSTED_ORIGINS``;
2. a logged-in user's request carries the CSRF token of their login: htmx sends it as the
   ``X-CSRF-Token`` header (``app.js`` reads it from ``<meta name="csrf-token">``), a plain
   form as the hidden field ``csrf_token`` (``partials/_csrf_field.html``). The token is an
   HMAC of the login's bearer token, so it changes with every login and needs no storage.

``/login`` has no session yet: only check 1 applies there. A refused request gets 403 with
a message saying why, and is audited in session-api (when its user is known).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from fastapi import Request

from proto.api import RefusalReport
from ui.auth import COOKIE, User, decode_cookie
from ui.client import ApiClient, ApiError

log = logging.getLogger(__name__)

HEADER = "X-CSRF-Token"
FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NO_SESSION_YET = frozenset({"/login"})
DEFAULT_PORTS = {"http": "80", "https": "443"}


class CrossSite(ApiError):
    """A state-changing request that is not the user's own: 403, audited."""

    status = 403
    cross_site = True


def token_for(user: User, key: str) -> str:
    """The CSRF token of ``user``'s login (an HMAC of their bearer token)."""
    digest = hmac.new(key.encode(), b"gridpilot-csrf\0" + user.token.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def normal_origin(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case, without the scheme's default port."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    scheme = parts.scheme.lower()
    shown = f":{port}" if port is not None and str(port) != DEFAULT_PORTS.get(scheme) else ""
    return f"{scheme}://{host.lower()}{shown}"


def own_origin(request: Request) -> str | None:
    """This server's origin as the browser addressed it (``Host``, and the scheme uvicorn
    took from ``X-Forwarded-Proto`` behind a trusted proxy)."""
    host = request.headers.get("host")
    return normal_origin(f"{request.url.scheme}://{host}") if host else None


def foreign(request: Request, trusted: frozenset[str]) -> str | None:
    """Why the request did not come from a page of this origin, or ``None`` if it did (or
    says nothing either way: scripts send neither header; the token check still applies)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return f"the browser says it came from another site (Sec-Fetch-Site: {site})"
    raw = request.headers.get("origin")
    if raw is None:
        return None
    origin = normal_origin(raw) if raw != "null" else None
    if origin is None or (origin != own_origin(request) and origin not in trusted):
        return f"it came from the page of another origin ({raw[:200]})"
    return None


async def _submitted_token(request: Request) -> str | None:
    header = request.headers.get(HEADER)
    if header:
        return header
    kind = request.headers.get("content-type", "")
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # parsed once: the route's Form() fields reuse it
        value = form.get(FIELD)
        return value if isinstance(value, str) else None
    return None


async def guard(request: Request) -> None:
    """The app-wide dependency: refuse (403, audited) an unsafe request that fails a check."""
    if request.method not in UNSAFE:
        return
    raw = request.cookies.get(COOKIE)
    user = decode_cookie(raw, request.app.state.secret_key) if raw else None
    trusted: frozenset[str] = request.app.state.trusted_origins
    reason = foreign(request, trusted)
    if reason is None and user is not None and request.url.path not in NO_SESSION_YET:
        sent = await _submitted_token(request)
        if sent is None:
            reason = "it carries no CSRF token (a form or script not made by this page)"
        elif not hmac.compare_digest(sent, token_for(user, request.app.state.secret_key)):
            reason = "its CSRF token belongs to another login (reload the page)"
    if reason is None:
        return
    await _audit(request, user, reason)
    raise CrossSite(f"this request was not sent by a Gridpilot page: {reason}.")


async def _audit(request: Request, user: User | None, reason: str) -> None:
    route = request.scope.get("route")
    action = str(getattr(route, "name", None) or request.url.path).replace("_", "-")
    where = f"{request.method} {request.url.path}"
    if user is None:
        log.warning("refused %s from no login: %s", where, reason)
        return
    http: httpx.AsyncClient = request.app.state.http
    try:
        session_id: UUID | None = UUID(str(request.path_params.get("session_id")))
    except ValueError:
        session_id = None
    report = RefusalReport(
        action=action[:64],
        request=where[:2048],
        reason=f"ui refused: {reason}"[:1000],
        session_id=session_id,
    )
    try:
        await ApiClient(http, user.token).report_refusal(report)
    except ApiError as exc:
        log.error("could not audit the refusal of %s by %s: %s", where, user.username, exc.detail)
