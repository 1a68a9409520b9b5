"""The login cookie: session-api's bearer token and who it belongs to, signed by the ui.

The cookie is HttpOnly and SameSite=Lax (cross-site pages cannot post with it); it is signed,
not encrypted, so it never holds anything but the token the browser was given anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from proto.api import ROLE_RANK, Role

COOKIE = "gridpilot_ui"
MAX_AGE_S = 12 * 3600


class LoginRequired(Exception):
    """No valid login cookie (or session-api said 401): go to the login page."""

    def __init__(self, next_url: str = "/") -> None:
        super().__init__(next_url)
        self.next_url = next_url


@dataclass(frozen=True)
class User:
    """The logged-in user as the ui knows them."""

    username: str
    role: Role
    token: str

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"

    @property
    def can_operate(self) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK["operator"]


def _b64(data: bytes) -> str:
    # No "=" padding: a cookie value with "=" gets quoted, and quoting is not round-tripped.
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: bytes) -> str:
    return _b64(hmac.new(key, payload, hashlib.sha256).digest())


def encode_cookie(user: User, key: str) -> str:
    payload = json.dumps({"u": user.username, "r": user.role, "t": user.token}).encode()
    return f"{_b64(payload)}.{_sign(key.encode(), payload)}"


def decode_cookie(value: str, key: str) -> User | None:
    """The user in a cookie made by :func:`encode_cookie`, ``None`` if forged or malformed."""
    body, _, signature = value.partition(".")
    try:
        payload = _unb64(body)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(signature, _sign(key.encode(), payload)):
        return None
    try:
        data = json.loads(payload)
        role = data["r"]
        if role not in ROLE_RANK:
            return None
        return User(username=str(data["u"]), role=role, token=str(data["t"]))
    except (ValueError, KeyError, TypeError):
        return None


def safe_next(url: str | None) -> str:
    """Only local paths are allowed as the after-login destination (no open redirect)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


def login_url(next_url: str) -> str:
    return "/login" if next_url == "/" else f"/login?next={quote(next_url, safe='/')}"


def current_user(request: Request) -> User:
    """The logged-in user, or :class:`LoginRequired`."""
    raw = request.cookies.get(COOKIE)
    user = decode_cookie(raw, request.app.state.secret_key) if raw else None
    if user is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        # An htmx or stream request comes from a page: send the page itself back to login.
        page = request.headers.get("HX-Current-URL")
        raise LoginRequired(safe_next(_path_of(page) if page else target))
    request.state.user = user
    return user


def _path_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


UserDep = Annotated[User, Depends(current_user)]
