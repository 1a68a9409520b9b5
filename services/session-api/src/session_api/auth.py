"""Users, passwords, tokens and the role checks every route makes on the server.

Roles are ordered viewer < operator < staff. Browsers log in with a cookie
(``gridpilot_session``), scripts with ``Authorization: Bearer <token>``; both carry the same
opaque token, stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from proto.api import ROLE_RANK, Role
from session_api.audit import SAFE_METHODS, action_of
from session_api.db.models import Token, User
from session_api.db.types import utcnow
from session_api.deps import DbDep, SettingsDep

COOKIE = "gridpilot_session"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    role: Role

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


async def add_user(db: AsyncSession, username: str, role: Role, password: str) -> User:
    """Create a user, or reset the role and password of an existing one."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLE_RANK)}")
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    user = await db.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, role=role, password_hash=hash_password(password))
        db.add(user)
    else:
        user.role, user.password_hash = role, hash_password(password)
    await db.flush()
    return user


async def authenticate(db: AsyncSession, username: str, password: str) -> User | None:
    user = await db.scalar(select(User).where(User.username == username))
    if user is None:
        hash_password(password)  # same work either way: no user enumeration by timing
        return None
    return user if verify_password(user.password_hash, password) else None


async def issue_token(db: AsyncSession, user: User, hours: float) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await db.execute(delete(Token).where(Token.expires_at < now))
    db.add(
        Token(token_hash=_digest(token), user_id=user.id, expires_at=now + timedelta(hours=hours))
    )
    return token


async def revoke_token(db: AsyncSession, token: str) -> None:
    await db.execute(delete(Token).where(Token.token_hash == _digest(token)))


def bearer_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def token_of(request: Request) -> str | None:
    return bearer_of(request) or request.cookies.get(COOKIE)


async def current_user(request: Request, db: DbDep, settings: SettingsDep) -> CurrentUser:
    """The user of the request's token. The cookie authenticates reads only: a state-changing
    request needs ``Authorization: Bearer`` (a page on another port of the same host could
    make the browser send the cookie; it cannot set that header)."""
    token = token_of(request)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not logged in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    row = await db.get(Token, _digest(token))
    if row is None or row.expires_at < utcnow():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "session expired or unknown token; log in again",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = await db.get(User, row.user_id)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "user no longer exists")
    current = CurrentUser(user.id, user.username, user.role)  # type: ignore[arg-type]
    request.state.user = current
    if request.method not in SAFE_METHODS and bearer_of(request) is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "a state-changing request needs the bearer token (Authorization: Bearer); "
            "the session cookie authenticates reads only",
        )
    return current


ACTIONS = {
    "start": "start a run",
    "stop": "stop a run",
    "pause-between-grids": "turn pause between grids on or off",
    "decision": "answer the pause prompt",
    "add-targets": "queue targets",
    "remove-targets": "take targets out of the queue",
    "force-start": "force start a run",
    "kill": "force-kill a run",
    "remove-lock": "remove a scope lock",
    "acknowledge": "take note of how a run ended",
    "create-session": "create a session",
    "edit-session": "change a session's grids or plan",
    "copy-session": "copy a session",
    "archive": "archive a session",
    "unarchive": "bring a session back from the archive",
    "skip-target": "skip a target",
    "skip-square": "skip the rest of a square",
    "get-audit": "read the audit log",
    "overview": "see the operations page",
    "dead-letters": "see the dead letters",
    "dlq-replay": "replay dead letters",
    "dlq-discard": "discard dead letters",
    "dlq-purge": "purge dead letters",
    "deliveries": "see everyone's notification deliveries",
}
"""What each route does, in words, by its audited action name (a route not listed here is
refused as "do this")."""
WHO = {"viewer": "signed-in users", "operator": "operators and staff", "staff": "staff"}


def refusal(request: Request, role: Role, user: CurrentUser) -> str:
    """The refusal in plain words: "Only operators and staff can start a run; you are signed
    in as a viewer." """
    what = ACTIONS.get(action_of(request), "do this")
    article = "an" if user.role[0] in "aeiou" else "a"
    return f"Only {WHO[role]} can {what}; you are signed in as {article} {user.role}."


def require(role: Role) -> Callable[..., Coroutine[Any, Any, CurrentUser]]:
    """A dependency that answers 403 unless the user has at least ``role``."""

    async def check(
        request: Request, user: Annotated[CurrentUser, Depends(current_user)]
    ) -> CurrentUser:
        if not user.at_least(role):
            # audited by the app's handler (an unsafe request of a known user)
            detail = refusal(request, role, user)
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail)
        return user

    return check


Viewer = Annotated[CurrentUser, Depends(require("viewer"))]
Operator = Annotated[CurrentUser, Depends(require("operator"))]
Staff = Annotated[CurrentUser, Depends(require("staff"))]
