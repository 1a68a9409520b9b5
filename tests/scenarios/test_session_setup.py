"""Sessions set up through session-api as the browser does it: create with a cassette and a
plan (on SQLite and PostgreSQL), edit before the first start, copy, archive (on both buses
too: edits and archiving announce on the bus, and a run starts and stops)."""

from __future__ import annotations

from typing import Any

import pytest

from support.system import SYSTEMS, System

DATABASES = pytest.mark.parametrize(
    "system",
    [
        pytest.param(("memory", "sqlite"), id="memory-sqlite"),
        pytest.param(("memory", "postgres"), id="memory-postgres", marks=pytest.mark.postgres),
    ],
    indirect=True,
)
BOTH_BUSES = pytest.mark.parametrize("system", SYSTEMS, indirect=True)
SLOW = pytest.mark.faults(slow_file_s=0.3)


def locs(r: Any) -> set[tuple[Any, ...]]:
    assert r.status_code == 422, r.text
    return {tuple(e["loc"]) for e in r.json()["detail"]}


@DATABASES
async def test_create_with_cassette_positions_and_a_plan(system: System) -> None:
    op = system.clients["operator"]
    body = {
        "name": "cassette",
        "microscope_id": "krios-1",
        "grids": ["late", "early"],
        "positions": [7, 2],
        "plan": {"atlas_only": True, "ordering": "thinnest_ice", "exposures_per_hole": 3},
    }
    r = await op.post("/api/sessions", json=body)
    assert r.status_code == 201, r.text
    view = r.json()
    assert [(g["position"], g["name"]) for g in view["grids"]] == [(2, "early"), (7, "late")]
    assert view["plan"] == {
        "squares_per_grid": None,
        "holes_per_square": None,
        "ordering": "thinnest_ice",
        "atlas_only": True,
        "exposures_per_hole": 3,
    }
    assert view["archived"] is False

    bad = {
        **body,
        "microscope_id": "nope",
        "grids": ["a", "b", "a"],
        "positions": [1, 1, 13],
        "plan": {"squares_per_grid": -1, "exposures_per_hole": 0, "ordering": "random"},
    }
    assert locs(await op.post("/api/sessions", json=bad)) == {
        ("body", "positions", 2),
        ("body", "plan", "squares_per_grid"),
        ("body", "plan", "exposures_per_hole"),
        ("body", "plan", "ordering"),
    }, "pydantic's field errors first"
    bad = {**body, "microscope_id": "nope", "grids": ["a", "b", "a"], "positions": [1, 1, 3]}
    assert locs(await op.post("/api/sessions", json=bad)) == {
        ("body", "microscope_id"),
        ("body", "grids", 2),
        ("body", "positions", 1),
    }, "then every check of session-api's own, in one answer"
    bad = {**body, "positions": [1]}
    assert locs(await op.post("/api/sessions", json=bad)) == {("body", "positions")}


@BOTH_BUSES
@SLOW
async def test_edit_before_the_first_start_then_only_the_plan(system: System) -> None:
    op = system.clients["operator"]
    session = await system.session("editable", grids=2)
    sid = session["id"]
    r = await op.patch(
        f"/api/sessions/{sid}",
        json={"name": "edited", "grids": ["x", "y", "z"], "positions": [3, 1, 2]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "edited"
    assert [g["name"] for g in r.json()["grids"]] == ["y", "z", "x"]
    assert locs(await op.patch(f"/api/sessions/{sid}", json={"grids": ["q", "q"]})) == {
        ("body", "grids", 1)
    }
    r = await op.patch(f"/api/sessions/{sid}", json={"plan": {"squares_per_grid": 1}})
    assert r.json()["plan"]["squares_per_grid"] == 1

    run_id = await system.start(sid)
    r = await op.patch(f"/api/sessions/{sid}", json={"plan": {"squares_per_grid": 2}})
    assert r.status_code == 409 and "stop it before changing" in r.json()["detail"]
    r = await op.post(f"/api/sessions/{sid}/archive")
    assert r.status_code == 409 and "stop it before archiving" in r.json()["detail"]
    await op.post(f"/api/sessions/{sid}/stop")
    await system.ended(run_id)
    r = await op.patch(f"/api/sessions/{sid}", json={"grids": ["new"]})
    assert r.status_code == 409 and "copy the session for new grids" in r.json()["detail"]
    r = await op.patch(f"/api/sessions/{sid}", json={"plan": {"atlas_only": True}})
    assert r.status_code == 200 and r.json()["plan"]["atlas_only"] is True
    assert r.json()["plan"]["squares_per_grid"] is None, "the plan is replaced whole"

    audit = (await system.clients["staff"].get("/api/audit", params={"limit": 1000})).json()
    edits = [(a["outcome"], a["detail"]) for a in audit if a["action"] == "edit-session"]
    assert ("ok", "changed: grids, name, positions") in edits
    assert any(o == "refused 409" for o, _d in edits)


@BOTH_BUSES
async def test_copy_and_archive(system: System) -> None:
    op, viewer = system.clients["operator"], system.clients["viewer"]
    r = await op.post(
        "/api/sessions",
        json={
            "name": "last week",
            "microscope_id": "krios-1",
            "grids": ["old-1"],
            "pause_between_grids": True,
            "plan": {"holes_per_square": 7},
        },
    )
    old = r.json()
    r = await op.post(
        f"/api/sessions/{old['id']}/copy",
        json={"name": "today", "grids": ["new-1", "new-2"], "positions": [4, 5]},
    )
    assert r.status_code == 201, r.text
    copy = r.json()
    assert copy["id"] != old["id"] and copy["microscope_id"] == "krios-1"
    assert copy["plan"] == old["plan"] and copy["pause_between_grids"] is True
    assert [(g["position"], g["name"]) for g in copy["grids"]] == [(4, "new-1"), (5, "new-2")]
    assert {g["id"] for g in copy["grids"]}.isdisjoint({g["id"] for g in old["grids"]})
    r = await op.post(f"/api/sessions/{old['id']}/copy", json={"name": "x", "grids": ["a", "a"]})
    assert locs(r) == {("body", "grids", 1)}

    r = await op.post(f"/api/sessions/{old['id']}/archive")
    assert r.status_code == 200 and r.json()["archived"] is True
    listed = {s["id"] for s in (await viewer.get("/api/sessions")).json()}
    assert old["id"] not in listed and copy["id"] in listed, "hidden from the default list"
    only = (await viewer.get("/api/sessions", params={"archived": "only"})).json()
    assert [s["id"] for s in only] == [old["id"]]
    every = (await viewer.get("/api/sessions", params={"archived": "include"})).json()
    assert {old["id"], copy["id"]} <= {s["id"] for s in every}
    r = await op.post(f"/api/sessions/{old['id']}/start")
    assert r.status_code == 409 and "is archived; unarchive it to start it" in r.json()["detail"]
    r = await op.patch(f"/api/sessions/{old['id']}", json={"name": "renamed"})
    assert r.status_code == 409
    r = await op.post(f"/api/sessions/{old['id']}/copy", json={"name": "again", "grids": ["g"]})
    assert r.status_code == 201, "an archived session can be copied"
    assert (await viewer.get(f"/api/sessions/{old['id']}")).status_code == 200, "data kept"
    r = await op.post(f"/api/sessions/{old['id']}/unarchive")
    assert r.json()["archived"] is False
    assert old["id"] in {s["id"] for s in (await viewer.get("/api/sessions")).json()}
    audit = (await system.clients["staff"].get("/api/audit", params={"limit": 1000})).json()
    actions = {(a["action"], a["outcome"]) for a in audit}
    assert {("copy-session", "ok"), ("archive", "ok"), ("unarchive", "ok")} <= actions
    assert ("start", "refused 409") in actions
