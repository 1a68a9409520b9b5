"""How session-api answers what it refuses or fails at, and audits it.

Every ``HTTPException`` and validation error of a state-changing request whose user is known
is audited here (``refused <status>``, or ``failed <status>`` from 500 on), in a transaction
of its own: the request's transaction has rolled back. Routes never audit refusals
themselves (see ``session_api.audit``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from session_api.audit import audit_refusal

log = logging.getLogger(__name__)


def summary(errors: Sequence[Any]) -> str:
    """FastAPI's 422 list in one line: ``path.session_id: Input should be a valid UUID; …``."""
    parts = []
    for err in errors:
        loc = ".".join(str(x) for x in err.get("loc", ())) if isinstance(err, dict) else ""
        msg = err.get("msg", "") if isinstance(err, dict) else str(err)
        parts.append(f"{loc}: {msg}" if loc else str(msg))
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        words = summary(exc.detail) if isinstance(exc.detail, list) else str(exc.detail)
        await audit_refusal(request, exc.status_code, words, getattr(exc, "target", None))
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        await audit_refusal(request, 422, summary(exc.errors()))
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        await audit_refusal(request, 500, repr(exc))
        return JSONResponse({"detail": "internal error; it is logged"}, status_code=500)
