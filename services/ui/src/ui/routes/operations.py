"""The operations page (staff): queues, worker heartbeats, dead letters to replay or discard.

session-api enforces the staff role on every call; the page only hides its link from others.
The queues and workers refresh every few seconds; each action answers with the refreshed
panel and a note saying what it did.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ui.client import ApiClient
from ui.deps import ApiDep, render

router = APIRouter()

REFRESH_S = 5


async def _panel(request: Request, api: ApiClient, note: str | None = None) -> Response:
    ops = await api.ops()
    return render(request, "partials/_ops.html", {"ops": ops, "note": note, "refresh_s": REFRESH_S})


@router.get("/operations")
async def page(request: Request, api: ApiDep) -> Response:
    ops = await api.ops()
    return render(
        request,
        "pages/operations.html",
        {"ops": ops, "note": None, "refresh_s": REFRESH_S, "nav": "operations"},
    )


@router.get("/operations/panel")
async def panel(request: Request, api: ApiDep) -> Response:
    return await _panel(request, api)


@router.post("/operations/dead-letters/{queue}/{key}/{action}")
async def act(
    request: Request, queue: str, key: str, action: Literal["replay", "discard"], api: ApiDep
) -> Response:
    done = await api.dead_letter(queue, key, action)
    return await _panel(request, api, f"{done.action.capitalize()} {key} of {queue}.")


@router.post("/operations/dead-letters/{queue}/purge")
async def purge(request: Request, queue: str, api: ApiDep) -> Response:
    done = await api.purge_dead_letters(queue)
    return await _panel(request, api, f"Purged {done.count} dead letters of {queue}.")
