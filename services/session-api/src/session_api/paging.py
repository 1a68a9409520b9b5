"""Keyset pages: a list route reads one row more than it answers, and when that row exists it
says where the next page starts in a ``Link: <url>; rel="next"`` header (RFC 8288).

The cursor is the last row's own id (or a run's number), never an offset: a page costs the
same however deep it is, and rows added meanwhile do not shift it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from fastapi import HTTPException, Request, Response, status

T = TypeVar("T")

MAX_ID = 2**63 - 1
"""The largest id a 64-bit column holds: a larger cursor overflowed the statement (a 500)."""
MAX_NUMBER = 2**31 - 1
"""The largest 32-bit integer (run numbers)."""


def cut(rows: Sequence[T], limit: int) -> tuple[list[T], bool]:
    """The first ``limit`` of ``rows`` (read with ``limit + 1``) and whether more follow."""
    return list(rows[:limit]), len(rows) > limit


def link_next(request: Request, response: Response, **cursor: object) -> None:
    """Point the answer at the page after it: the same URL with ``cursor`` replaced."""
    url = request.url.remove_query_params(list(cursor)).include_query_params(**cursor)
    response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'


def bad_query(field: str, message: str) -> HTTPException:
    """A 422 naming the query parameter, in FastAPI's field-list form."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["query", field], "msg": message, "type": "value_error"}],
    )
