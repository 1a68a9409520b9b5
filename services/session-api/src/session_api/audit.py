"""The audit log: who did what, when, to which run, and how it ended.

Rows are written on their own transaction, so a refused or failed action is recorded even
though the request's own transaction rolls back.
"""

from __future__ import annotations

import uuid

from fastapi import Request

from session_api.db.models import AuditEntry


async def audit(
    request: Request,
    username: str,
    action: str,
    outcome: str,
    *,
    session_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    async with request.app.state.sessionmaker() as db:
        db.add(
            AuditEntry(
                username=username,
                action=action,
                outcome=outcome,
                session_id=session_id,
                run_id=run_id,
                target=target,
                detail=detail,
            )
        )
        await db.commit()
