"""Login and logout: the ui asks session-api for a token and keeps it in its own cookie."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ui.auth import COOKIE, MAX_AGE_S, User, decode_cookie, encode_cookie, safe_next
from ui.client import ApiClient, ApiError, NotLoggedIn, Rejected
from ui.deps import render

router = APIRouter()


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "pages/login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    http: httpx.AsyncClient = request.app.state.http
    target = safe_next(next)
    error = None
    if not username or not password:
        error = "Enter your username and password."
    else:
        try:
            token = await ApiClient(http).token(username, password)
        except (NotLoggedIn, Rejected):
            error = "Wrong username or password."
        except ApiError as exc:
            error = f"Cannot log in now: {exc.detail}"
        else:
            user = User(token.user.username, token.user.role, token.access_token)
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(
                COOKIE,
                encode_cookie(user, request.app.state.secret_key),
                max_age=MAX_AGE_S,
                httponly=True,
                samesite="lax",
                secure=request.app.state.settings.cookie_secure,
                path="/",
            )
            return response
    context = {"next": target, "error": error, "username": username}
    return render(request, "pages/login.html", context, status_code=401)


@router.post("/logout")
async def logout(request: Request) -> Response:
    raw = request.cookies.get(COOKIE)
    user = decode_cookie(raw, request.app.state.secret_key) if raw else None
    if user is not None:
        try:
            await ApiClient(request.app.state.http, user.token).logout()
        except ApiError:
            pass  # the cookie goes anyway; an expired token needs no logout
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
