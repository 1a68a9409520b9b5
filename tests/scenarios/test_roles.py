"""Every route × every role: the server enforces roles whatever the pages render."""

from __future__ import annotations

import uuid

import pytest

from support.system import System

ROLES = ("anonymous", "viewer", "operator", "staff")
RANK = {"anonymous": -1, "viewer": 0, "operator": 1, "staff": 2}
NIL = str(uuid.UUID(int=0))

# (method, path template, JSON body, least role)
ROUTES = [
    ("GET", "/api/auth/me", None, "viewer"),
    ("GET", "/api/microscopes", None, "viewer"),
    ("POST", "/api/microscopes/krios-2/lease/release", None, "staff"),
    ("GET", "/api/sessions", None, "viewer"),
    (
        "POST",
        "/api/sessions",
        {"name": "m", "microscope_id": "krios-2", "grids": ["g"]},
        "operator",
    ),
    ("GET", "/api/sessions/{sid}", None, "viewer"),
    ("PATCH", "/api/sessions/{sid}", {"plan": {"atlas_only": True}}, "operator"),
    ("POST", "/api/sessions/{sid}/copy", {"name": "c", "grids": ["g"]}, "operator"),
    ("POST", "/api/sessions/{sid}/archive", None, "operator"),
    ("POST", "/api/sessions/{sid}/unarchive", None, "operator"),
    ("POST", "/api/sessions/{sid}/start", None, "operator"),
    ("POST", "/api/sessions/{sid}/stop", None, "operator"),
    ("PUT", "/api/sessions/{sid}/pause-between-grids", {"enabled": True}, "operator"),
    ("POST", "/api/sessions/{sid}/decision", {"choice": "next_grid"}, "operator"),
    ("GET", "/api/sessions/{sid}/queue", None, "viewer"),
    ("GET", "/api/sessions/{sid}/runs", None, "viewer"),
    ("POST", "/api/sessions/{sid}/targets", {"target_ids": [NIL]}, "operator"),
    ("DELETE", "/api/sessions/{sid}/targets", {"target_ids": [NIL]}, "operator"),
    ("POST", "/api/sessions/{sid}/skip-target", {"target_id": NIL}, "operator"),
    ("POST", "/api/sessions/{sid}/skip-square", {}, "operator"),
    ("POST", "/api/sessions/{sid}/force-start", None, "staff"),
    ("POST", "/api/sessions/{sid}/kill", None, "staff"),
    ("GET", "/api/sessions/{sid}/logs", None, "viewer"),
    ("GET", "/api/sessions/{sid}/exposures", None, "viewer"),
    ("GET", "/api/sessions/{sid}/exposures/series", None, "viewer"),
    ("GET", "/api/sessions/{sid}/grids/" + NIL, None, "viewer"),
    ("GET", "/api/squares/" + NIL, None, "viewer"),
    ("GET", "/api/images/" + NIL + ".png", None, "viewer"),
    ("GET", "/api/runs/" + NIL, None, "viewer"),
    ("POST", "/api/sessions/{sid}/runs/" + NIL + "/acknowledge", None, "operator"),
    ("GET", "/api/audit", None, "staff"),
    ("GET", "/api/ops", None, "staff"),
    ("GET", "/api/ops/dead-letters", None, "staff"),
    ("POST", "/api/ops/dead-letters/processing.images/no-such-key/replay", None, "staff"),
    ("POST", "/api/ops/dead-letters/processing.images/no-such-key/discard", None, "staff"),
    ("POST", "/api/ops/dead-letters/processing.images/purge", None, "staff"),
    ("GET", "/api/notifications", None, "viewer"),
    (
        "POST",
        "/api/notifications/destinations",
        {"label": "m", "url": "json://127.0.0.1:9/x"},
        "viewer",
    ),
    ("DELETE", "/api/notifications/destinations/999999", None, "viewer"),
    ("POST", "/api/notifications/destinations/999999/test", None, "viewer"),
    (
        "POST",
        "/api/notifications/subscriptions",
        {"microscope_id": "krios-2", "events": ["run_ended"]},
        "viewer",
    ),
    ("DELETE", "/api/notifications/subscriptions/999999", None, "viewer"),
    ("GET", "/api/notifications/deliveries", None, "staff"),
]


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
async def test_role_matrix(system: System) -> None:
    """Below the least role: 401 (anonymous) or 403; at or above it: anything but those."""
    session = await system.session("matrix", microscope="krios-2", grids=1)
    failures = []
    for method, template, body, least in ROUTES:
        path = template.format(sid=session["id"])
        for role in ROLES:
            client = system.clients[role]
            r = await client.request(method, path, json=body)
            if role == "anonymous":
                expected_ok = r.status_code == 401
            elif RANK[role] < RANK[least]:
                expected_ok = r.status_code == 403
            else:
                expected_ok = r.status_code not in (401, 403)
            if not expected_ok:
                failures.append(f"{method} {template} as {role}: {r.status_code} {r.text[:80]}")
            if r.status_code == 403 and "can do this;" in r.json()["detail"]:
                # a refusal says what was refused (session_api.auth.ACTIONS)
                failures.append(f"{method} {template} as {role}: {r.json()['detail']}")
            if role == "operator" and template.endswith("/start") and r.status_code == 202:
                await client.post(f"/api/sessions/{session['id']}/stop")
    assert not failures, "\n".join(failures)

    # every action refused for the role is audited (reads refused are not actions)
    denied = sorted(
        role
        for method, _t, _b, least in ROUTES
        for role in ROLES
        if method != "GET" and role != "anonymous" and RANK[role] < RANK[least]
    )
    audit = (await system.clients["staff"].get("/api/audit", params={"limit": 1000})).json()
    refused = [a for a in audit if a["outcome"] == "refused 403"]
    assert sorted(a["username"] for a in refused) == denied
    by = {(a["username"], a["action"]): a for a in refused}
    kill = by["operator", "kill"]
    assert kill["session_id"] == session["id"]
    assert kill["detail"] == "Only staff can force-kill a run; you are signed in as an operator."
    start = by["viewer", "start"]["detail"]
    assert start == "Only operators and staff can start a run; you are signed in as a viewer."
    assert by["operator", "remove-lock"]["target"] == "krios-2"
    assert by["viewer", "start"]["session_id"] == session["id"]
    assert by["operator", "dlq-purge"]["target"] == "processing.images"
    assert by["operator", "dlq-replay"]["target"] == "processing.images/no-such-key"


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
async def test_bad_input_gets_clear_errors(system: System) -> None:
    op = system.clients["operator"]
    r = await op.post("/api/sessions", json={"name": "", "microscope_id": "krios-1", "grids": []})
    assert r.status_code == 422
    fields = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert ("body", "name") in fields and ("body", "grids") in fields
    r = await op.post(
        "/api/sessions",
        json={"name": "x ", "microscope_id": "krios-1", "grids": ["a", "", "<b>", "g" * 65]},
    )
    assert r.status_code == 422
    fields = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert fields == {
        ("body", "name"),
        ("body", "grids", 1),
        ("body", "grids", 2),
        ("body", "grids", 3),
    }
    r = await op.post("/api/sessions", json={"name": "x", "microscope_id": "nope", "grids": ["a"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "microscope_id"]
    r = await op.get(f"/api/sessions/{NIL}")
    assert r.status_code == 404 and NIL in r.json()["detail"]
    session = await system.session("bad", grids=1)
    r = await op.post(f"/api/sessions/{session['id']}/decision", json={"choice": "sideways"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "choice"]
    r = await op.put(
        f"/api/sessions/{session['id']}/pause-between-grids", json={"enabled": "perhaps"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "enabled"]
    r = await op.post(f"/api/sessions/{session['id']}/stop")
    assert r.status_code == 409 and "no live run" in r.json()["detail"]
    r = await op.post(f"/api/sessions/{session['id']}/targets", json={"target_ids": [NIL]})
    assert r.status_code == 404 and NIL in r.json()["detail"]
    r = await system.clients["anonymous"].post(
        "/api/auth/token", json={"username": "operator", "password": "wrong"}
    )
    assert r.status_code == 401
