"""Logging in: a cookie for browsers, a bearer token for scripts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from proto.api import LoginRequest, TokenResponse, UserView
from session_api.audit import audit
from session_api.auth import COOKIE, Viewer, authenticate, issue_token, revoke_token, token_of
from session_api.deps import DbDep, SettingsDep

router = APIRouter(prefix="/api/auth", tags=["auth"])


async def _login(
    request: Request, db: DbDep, settings: SettingsDep, body: LoginRequest
) -> TokenResponse:
    user = await authenticate(db, body.username, body.password)
    if user is None:
        await audit(request, body.username, "login", "denied", detail="wrong username or password")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token = await issue_token(db, user, settings.token_hours)
    await db.commit()
    return TokenResponse(access_token=token, user=UserView(username=user.username, role=user.role))


@router.post("/login")
async def login(
    body: LoginRequest, request: Request, response: Response, db: DbDep, settings: SettingsDep
) -> TokenResponse:
    """Log in from a browser: the token comes back and is set as an HttpOnly cookie."""
    answer = await _login(request, db, settings, body)
    response.set_cookie(
        COOKIE,
        answer.access_token,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        max_age=int(settings.token_hours * 3600),
    )
    return answer


@router.post("/token")
async def token(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
) -> TokenResponse:
    """A bearer token for scripts; accepts JSON ``{username, password}`` or an OAuth2 form."""
    if username is None or password is None:
        try:
            raw = await request.json()
        except (ValueError, RecursionError) as exc:  # not JSON, or nested too deep
            raise RequestValidationError(
                [{"loc": ("body",), "msg": "a JSON object or a form", "type": "json_invalid"}]
            ) from exc
        try:
            body = LoginRequest.model_validate(raw or {})
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
    else:
        body = LoginRequest(username=username, password=password)
    return await _login(request, db, settings, body)


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response, db: DbDep) -> None:
    token_value = token_of(request)
    if token_value:
        await revoke_token(db, token_value)
        await db.commit()
    response.delete_cookie(COOKIE)


@router.get("/me")
async def me(user: Viewer) -> UserView:
    return UserView(username=user.username, role=user.role)
