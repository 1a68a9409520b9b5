"""The operations page (staff): queues, worker heartbeats, dead letters to replay or discard.

session-api enforces the staff role on every call; the page only hides its link from others.
The panel is drawn by its own GET only: every few seconds, and at once after an action, whose
answer is a note for the message area saying what it did, and the event ``ops-changed``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ui.deps import ApiDep, render, to_messages

router = APIRouter()

REFRESH_S = 5


def _done(request: Request, note: str) -> Response:
    # after the swap: htmx then sends the event from the page's body if the panel's poll has
    # replaced the button meanwhile (from a detached button it would reach no one)
    headers = {**to_messages(request), "HX-Trigger-After-Swap": "ops-changed"}
    return render(request, "partials/_message.html", {"error": None, "note": note}, headers=headers)


@router.get("/operations")
async def page(request: Request, api: ApiDep) -> Response:
    ops = await api.ops()
    return render(
        request,
        "pages/operations.html",
        {"ops": ops, "refresh_s": REFRESH_S, "nav": "operations"},
    )


@router.get("/operations/panel")
async def panel(request: Request, api: ApiDep) -> Response:
    ops = await api.ops()
    return render(request, "partials/_ops.html", {"ops": ops, "refresh_s": REFRESH_S})


@router.post("/operations/dead-letters/{queue}/{key}/{action}")
async def act(
    request: Request, queue: str, key: str, action: Literal["replay", "discard"], api: ApiDep
) -> Response:
    done = await api.dead_letter(queue, key, action)
    return _done(request, f"{done.action.capitalize()} {key} of {queue}.")


@router.post("/operations/dead-letters/{queue}/purge")
async def purge(request: Request, queue: str, api: ApiDep) -> Response:
    done = await api.purge_dead_letters(queue)
    return _done(request, f"Purged {done.count} dead letters of {queue}.")
