"""The audit is never lost (issue 14, item 4), on SQLite and PostgreSQL.

A control's row commits in the same transaction as its change, before its command is
published; long values go to the text ``detail``; every refusal of a control is audited, even
with absurd path parameters.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from proto import messages as m
from session_api.db.models import AuditEntry
from support.system import System

DATABASES = pytest.mark.parametrize(
    "system",
    [
        pytest.param(("memory", "sqlite"), id="memory-sqlite"),
        pytest.param(("memory", "postgres"), id="memory-postgres", marks=pytest.mark.postgres),
    ],
    indirect=True,
)


async def audit_rows(system: System, **where: Any) -> list[dict[str, Any]]:
    rows = (await system.clients["staff"].get("/api/audit", params={"limit": 5000})).json()
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def spy_on_commands(system: System) -> dict[str, list[str]]:
    """For each command session-api publishes, the audit rows already committed (read in a
    transaction of its own) at the moment it is published."""
    seen: dict[str, list[str]] = {}
    publish = system.bus.publish

    async def spy(message: m.Message) -> None:
        if message.exchange == m.StopRun.exchange:
            async with system.api.state.sessionmaker() as db:
                rows = (await db.scalars(select(AuditEntry))).all()
                seen[message.routing_key] = [f"{r.action} {r.outcome}" for r in rows]
        await publish(message)

    system.bus.publish = spy  # type: ignore[method-assign]
    return seen


@DATABASES
async def test_eight_targets_are_audited_before_they_are_published(system: System) -> None:
    session = await system.session("eight", grids=2, pause=True)
    sid, op = session["id"], system.clients["operator"]
    run_id = await system.start(sid)
    prompt = await system.wait_for(m.DecisionRequested, lambda e: e.run_id == run_id, timeout=60)
    grid = (await op.get(f"/api/sessions/{sid}/grids/{prompt.grid_id}")).json()
    fresh = [s["id"] for s in grid["squares"] if s["status"] is None][:8]
    assert len(fresh) == 8, "the atlas has eight squares not queued yet"
    seen = spy_on_commands(system)

    r = await op.post(f"/api/sessions/{sid}/targets", json={"target_ids": fresh})
    assert r.status_code == 202, r.text
    assert "add-targets ok" in seen["targets.add"], "audited before the command went out"
    [row] = await audit_rows(system, action="add-targets", outcome="ok")
    assert row["target"] == "8 targets" and row["run_id"] == str(run_id)
    assert all(t in row["detail"] for t in fresh)

    await op.post(f"/api/sessions/{sid}/stop")
    assert "stop ok" in seen["run.stop"]
    await system.ended(run_id)


@DATABASES
async def test_refusals_with_absurd_path_parameters_are_audited(system: System) -> None:
    viewer, op, staff = (system.clients[r] for r in ("viewer", "operator", "staff"))
    scope = "k" * 300
    r = await viewer.post(f"/api/microscopes/{scope}/lease/release")
    assert r.status_code == 403, r.text
    r = await staff.post(f"/api/microscopes/{scope}/lease/release")
    assert r.status_code == 422, r.text
    r = await op.post("/api/sessions/not-a-session/start")
    assert r.status_code == 422, r.text
    r = await op.post(f"/api/sessions/{'9' * 300}/kill")
    assert r.status_code == 403, r.text
    session = await system.session("refusals", grids=1)
    r = await op.post(f"/api/sessions/{session['id']}/stop")
    assert r.status_code == 409, r.text
    r = await op.put(f"/api/sessions/{session['id']}/pause-between-grids", json={"enabled": []})
    assert r.status_code == 422, r.text
    r = await op.post(f"/api/sessions/{uuid.UUID(int=1)}/decision", json={"choice": "next_grid"})
    assert r.status_code == 404, r.text

    [viewer_row] = await audit_rows(system, username="viewer", action="remove-lock")
    assert viewer_row["outcome"] == "refused 403"
    assert viewer_row["target"].endswith("…") and len(viewer_row["target"]) == 255
    assert f"target: {scope}" in viewer_row["detail"]
    [staff_row] = await audit_rows(system, username="staff", action="remove-lock")
    assert staff_row["outcome"] == "refused 422" and "microscope_id" in staff_row["detail"]
    [start] = await audit_rows(system, username="operator", action="start")
    assert start["outcome"] == "refused 422" and "session_id" in start["detail"]
    [kill] = await audit_rows(system, username="operator", action="kill")
    assert kill["outcome"] == "refused 403" and kill["session_id"] is None
    [stop] = await audit_rows(system, username="operator", action="stop")
    assert stop["outcome"] == "refused 409" and stop["session_id"] == session["id"]
    [pause] = await audit_rows(system, action="pause-between-grids")
    assert pause["outcome"] == "refused 422" and "enabled" in pause["detail"]
    [decision] = await audit_rows(system, action="decision")
    assert decision["outcome"] == "refused 404"


@DATABASES
async def test_bad_values_get_4xx_not_500(system: System) -> None:
    anonymous, viewer = system.clients["anonymous"], system.clients["viewer"]
    r = await anonymous.post("/api/auth/token", json={"username": "op\x00erator", "password": "x"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == "username"
    deep = "[" * 5000 + "]" * 5000
    r = await anonymous.post(
        "/api/auth/token", content=deep, headers={"content-type": "application/json"}
    )
    assert r.status_code in (400, 422), r.text
    session = await system.session("values", grids=1)
    r = await viewer.get(f"/api/sessions/{session['id']}/logs", params={"after_id": 10**29})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "after_id"]
    r = await viewer.get("/api/sessions", params={"microscope_id": "krios\x001"})
    assert r.status_code in (200, 422), r.text


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
async def test_the_cookie_authenticates_reads_only(system: System) -> None:
    """session-api's cookie cannot be made to act by a page on another port of the host."""
    r = await system.clients["anonymous"].post(
        "/api/auth/login", json={"username": "staff", "password": "correct horse battery"}
    )
    assert r.status_code == 200
    assert "gridpilot_session" in r.headers["set-cookie"]
    cookie = {"Cookie": f"gridpilot_session={r.json()['access_token']}"}
    browser = system.clients["anonymous"]
    browser.cookies.clear()
    assert (await browser.get("/api/auth/me", headers=cookie)).status_code == 200
    session = await system.session("cookie", grids=1)
    r = await browser.post(f"/api/sessions/{session['id']}/start", headers=cookie)
    assert r.status_code == 403 and "bearer" in r.json()["detail"]
    [row] = await audit_rows(system, action="start")
    assert row["username"] == "staff" and row["outcome"] == "refused 403"
