"""A session's screening plan drives its runs, and targets are skipped while a run goes:
written once, run on both buses (and on PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

from proto import messages as m
from support.system import System


async def planned(system: System, name: str, plan: dict[str, Any], grids: int = 1) -> str:
    r = await system.clients["operator"].post(
        "/api/sessions",
        json={
            "name": name,
            "microscope_id": "krios-1",
            "grids": [f"{name}-g{i}" for i in range(1, grids + 1)],
            "plan": plan,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["plan"]["ordering"] == plan.get("ordering", "score")
    return str(r.json()["id"])


def of_run(system: System, kind: type[m.Message], run_id: uuid.UUID) -> list[Any]:
    return [e for e in system.projected if isinstance(e, kind) and e.run_id == run_id]


def thinnest(found: tuple[m.Target, ...], n: int) -> list[uuid.UUID]:
    good = [t for t in found if t.cls == "good" and t.ice_nm is not None]
    return [t.target_id for t in sorted(good, key=lambda t: (t.ice_nm, -t.score))[:n]]


async def test_the_plan_sets_squares_holes_order_and_movies_per_hole(system: System) -> None:
    plan = {
        "squares_per_grid": 1,
        "holes_per_square": 3,
        "ordering": "thinnest_ice",
        "exposures_per_hole": 2,
    }
    sid = await planned(system, "planned", plan)
    run_id = await system.start(sid)
    ended = await system.ended(run_id, timeout=120)
    assert ended.exit_reason == "completed", ended.detail
    await system.log_line(
        run_id, "screening plan: 1 square per grid, 3 holes per square, thinnest ice first"
    )
    squares = of_run(system, m.SquaresFound, run_id)[0].squares
    imaged = [e.square_id for e in of_run(system, m.SquareAcquired, run_id)]
    assert imaged == thinnest(squares, 1), "one square: the thinnest good ice"
    holes = next(e.holes for e in of_run(system, m.HolesFound, run_id))
    movies = [e.hole_id for e in of_run(system, m.ExposureAcquired, run_id)]
    expected = thinnest(holes, 3)
    assert movies == [h for h in expected for _ in range(2)], "two movies per hole, thin first"
    view = (await system.clients["viewer"].get(f"/api/runs/{run_id}")).json()
    assert view["exposures"] == 6


async def test_atlas_only_then_the_operator_chooses_squares_and_starts_again(
    system: System,
) -> None:
    sid = await planned(system, "atlases", {"atlas_only": True}, grids=2)
    op, viewer = system.clients["operator"], system.clients["viewer"]
    first = await system.start(sid)
    ended = await system.ended(first, timeout=120)
    assert ended.exit_reason == "completed", ended.detail
    assert len(of_run(system, m.AtlasAcquired, first)) == 2, "every grid's atlas"
    assert not of_run(system, m.SquareAcquired, first) and not of_run(
        system, m.ExposureAcquired, first
    )
    await system.log_line(first, "atlas only: queued none")
    session = (await viewer.get(f"/api/sessions/{sid}")).json()
    assert [(g["status"], bool(g["atlas_id"])) for g in session["grids"]] == [
        ("pending", True),
        ("pending", True),
    ], "an atlas-only grid stays to be screened"

    g1 = session["grids"][0]["id"]
    grid = (await viewer.get(f"/api/sessions/{sid}/grids/{g1}")).json()
    chosen = [s["id"] for s in grid["squares"] if s["cls"] == "good"][-1]
    r = await op.post(f"/api/sessions/{sid}/targets", json={"target_ids": [chosen]})
    assert r.status_code == 202, r.text
    grid = (await viewer.get(f"/api/sessions/{sid}/grids/{g1}")).json()
    assert {s["id"]: s["status"] for s in grid["squares"]}[chosen] == "queued"
    queue = (await viewer.get(f"/api/sessions/{sid}/queue")).json()
    assert [(i["target_id"], i["status"]) for i in queue["items"]] == [(chosen, "queued")]
    assert queue["counts"]["squares_queued"] == 1, "the panel shows what the next run takes"

    mark = system.mark()
    second = await system.start(sid)
    await system.log_line(second, "has an atlas from an earlier run")
    await system.log_line(second, "going on with what the earlier run left queued")
    ended = await system.ended(second, timeout=120)
    assert ended.exit_reason == "completed", ended.detail
    assert not of_run(system, m.AtlasAcquired, second), "the atlases are reused"
    assert [str(e.square_id) for e in of_run(system, m.SquareAcquired, second)] == [chosen]
    assert of_run(system, m.ExposureAcquired, second), "holes on the chosen square"
    assert system.mark() > mark
    grids = (await viewer.get(f"/api/sessions/{sid}")).json()["grids"]
    assert [g["status"] for g in grids] == ["done", "pending"]
    left = [s["id"] for s in grid["squares"] if s["cls"] == "good" and s["id"] != chosen][:1]
    r = await op.post(f"/api/sessions/{sid}/targets", json={"target_ids": left})
    assert r.status_code == 409 and "is screened" in r.json()["detail"]


async def test_skip_this_target_and_the_rest_of_its_square(system: System) -> None:
    """Skips are honoured at the next safe point, never inside an exposure: the movie under
    way is finished and the hole's other movies are not taken; the rest of the square (its
    queued holes) is skipped at once."""
    plan = {"squares_per_grid": 2, "holes_per_square": 3, "exposures_per_hole": 3}
    sid = await planned(system, "skipper", plan)
    op = system.clients["operator"]
    system.hold()
    run_id = await system.start(sid)
    await system.held()  # the first movie of the first hole is under way
    queue = await system.wait_for(
        m.QueueUpdated,
        lambda e: (
            e.run_id == run_id
            and any(i.status == "acquiring" and i.kind == "hole" for i in e.items)
        ),
    )
    hole = next(i.target_id for i in queue.items if i.status == "acquiring")
    siblings = [i.target_id for i in queue.items if i.status == "queued" and i.kind == "hole"]
    assert len(siblings) == 2, queue.items
    r = await op.post(f"/api/sessions/{sid}/skip-target", json={"target_id": str(hole)})
    assert r.status_code == 202, r.text
    await system.log_line(run_id, f"asked to skip hole {hole.hex[:6]}, being acquired")
    r = await op.post(f"/api/sessions/{sid}/skip-square", json={"target_id": str(siblings[0])})
    assert r.status_code == 202, r.text
    await system.log_line(run_id, "2 queued holes, the hole being acquired, at the next safe")
    assert not of_run(system, m.ExposureAcquired, run_id), "still inside the first movie"

    mark = system.mark()
    system.release()
    square = await system.wait_for(m.SquareAcquired, lambda e: e.run_id == run_id, after=mark)
    await system.log_line(run_id, f"hole {hole.hex[:6]} skipped as asked by operator")
    movies = [e.hole_id for e in of_run(system, m.ExposureAcquired, run_id)]
    assert movies == [hole], "the movie under way was finished; nothing else of the square"
    first = next(e.square_id for e in of_run(system, m.SquareAcquired, run_id))
    assert square.square_id != first
    detail = (await system.clients["viewer"].get(f"/api/squares/{first}")).json()
    statuses = {h["id"]: h["status"] for h in detail["holes"] if h["status"]}
    assert statuses == {str(h): "skipped" for h in (hole, *siblings)}
    r = await op.post(f"/api/sessions/{sid}/skip-target", json={"target_id": str(hole)})
    assert r.status_code == 409 and "hole" in r.json()["detail"] and "skipped" in r.json()["detail"]
    await op.post(f"/api/sessions/{sid}/stop")  # it may have run out of targets already
    assert (await system.ended(run_id)).exit_reason in ("stopped", "completed")
    audit = (await system.clients["staff"].get("/api/audit", params={"limit": 1000})).json()
    assert {(a["action"], a["outcome"]) for a in audit if a["session_id"] == sid} >= {
        ("skip-target", "ok"),
        ("skip-square", "ok"),
        ("skip-target", "refused 409"),
    }
