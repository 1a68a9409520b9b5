"""The facility dashboard: one live card per microscope."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ui.deps import ApiDep, render

router = APIRouter()


@router.get("/")
async def dashboard(request: Request, api: ApiDep) -> Response:
    scopes = await api.microscopes()
    return render(request, "pages/facility.html", {"scopes": scopes, "nav": "facility"})
