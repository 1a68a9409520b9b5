"""Taking note of how an ended run ended: once, for everyone, audited and announced."""

from __future__ import annotations

import pytest

from proto import messages as m
from support.system import System


@pytest.mark.faults(slow_file_s=0.3)
async def test_an_ended_run_is_acknowledged_once_for_everyone(system: System) -> None:
    session = await system.session("ack", grids=2)
    other = await system.session("ack other", microscope="krios-2", grids=1)
    sid, op = session["id"], system.clients["operator"]
    run_id = await system.start(sid)
    path = f"/api/sessions/{sid}/runs/{run_id}/acknowledge"
    live = await op.post(path)
    assert live.status_code == 409 and "has not ended yet" in live.json()["detail"]
    await op.post(f"/api/sessions/{sid}/stop")
    await system.ended(run_id)

    mark = system.mark()
    r = await op.post(path)
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] == "operator" and r.json()["acknowledged_at"]
    said = await system.wait_for(m.SessionChanged, lambda e: str(e.session_id) == sid, after=mark)
    assert said.change == "run 1 acknowledged" and said.run_id == run_id
    again = await system.clients["staff"].post(path)
    assert again.status_code == 200 and again.json()["acknowledged_by"] == "operator"
    shown = (await system.clients["viewer"].get(f"/api/sessions/{sid}")).json()["run"]
    assert shown["acknowledged_by"] == "operator"

    elsewhere = await op.post(f"/api/sessions/{other['id']}/runs/{run_id}/acknowledge")
    assert elsewhere.status_code == 404 and "ack other" in elsewhere.json()["detail"]
    audit = (await system.clients["staff"].get("/api/audit", params={"limit": 100})).json()
    rows = [(a["username"], a["outcome"]) for a in audit if a["action"] == "acknowledge"]
    assert sorted(rows) == [
        ("operator", "ok"),
        ("operator", "refused 404"),
        ("operator", "refused 409"),
        ("staff", "ok"),
    ]
    said_again = [
        e for e in system.projected[mark:] if isinstance(e, m.SessionChanged) and e.run_id == run_id
    ]
    assert len(said_again) == 1, "taking note twice announces nothing new"
