"""Run control end to end, written once, run on both buses (and on PostgreSQL)."""

from __future__ import annotations

import pytest

from proto import messages as m
from proto.states import RunState
from support.system import WITH_SERIALEM, System

pytestmark = pytest.mark.parametrize("system", WITH_SERIALEM, indirect=True)

SLOW = pytest.mark.faults(slow_file_s=0.3)
"""Exposures that take a while, so a run is still running when the test acts on it."""


@SLOW
async def test_start_takes_exposures_and_soft_stop_ends_stopped(system: System) -> None:
    session = await system.session("alpha", grids=3)
    run_id = await system.start(session["id"])
    exposure = await system.wait_for(m.ExposureAcquired, lambda e: e.run_id == run_id)
    # the exposure says how it was taken: the scope's optics and camera (its configuration)
    assert exposure.optics == m.Optics() and exposure.detector == m.Detector()
    r = await system.clients["operator"].post(f"/api/sessions/{session['id']}/stop")
    assert r.status_code == 202 and r.json()["stop_requested"] is True
    stopping = await system.wait_for(
        m.RunStateChanged, lambda e: e.run_id == run_id and e.state == RunState.STOPPING
    )
    ended = await system.ended(run_id)
    assert ended.exit_reason == "stopped"
    after = system.projected[system.projected.index(stopping) :]
    assert sum(isinstance(e, m.ExposureAcquired) for e in after) <= 1, (
        "no exposure may begin after the stop"
    )
    run = (await system.clients["viewer"].get(f"/api/runs/{run_id}")).json()
    assert run["state"] == "ended" and run["exit_reason"] == "stopped" and run["ended_at"]
    assert run["host"] and run["pid"]
    await system.log_line(run_id, "stop signal received from operator")
    logs = (await system.clients["viewer"].get(f"/api/sessions/{session['id']}/logs")).json()
    assert any("stop signal received" in line["text"] for line in logs)


@SLOW
async def test_each_start_is_a_new_run_and_a_live_run_blocks_start(system: System) -> None:
    session = await system.session("beta", grids=1)
    first = await system.start(session["id"])
    again = await system.clients["operator"].post(f"/api/sessions/{session['id']}/start")
    assert again.status_code == 409 and str(first) in again.json()["detail"]
    await system.clients["operator"].post(f"/api/sessions/{session['id']}/stop")
    await system.ended(first)
    second = await system.start(session["id"])
    assert second != first
    run = (await system.clients["viewer"].get(f"/api/runs/{second}")).json()
    assert run["number"] == 2


async def test_pause_between_grids_prompt_continue_targets_next_grid(system: System) -> None:
    session = await system.session("gamma", grids=2, pause=True)
    sid, op = session["id"], system.clients["operator"]
    run_id = await system.start(sid)
    prompt = await system.wait_for(m.DecisionRequested, lambda e: e.run_id == run_id, timeout=60)
    await system.wait_for(
        m.RunStateChanged, lambda e: e.run_id == run_id and e.state == "awaiting_decision"
    )
    assert (
        prompt.grid_name == "gamma-g1" and prompt.has_next_grid and prompt.reprompt_reason is None
    )

    mark = system.mark()
    assert (
        await op.post(f"/api/sessions/{sid}/decision", json={"choice": "continue_grid"})
    ).status_code == 202
    again = await system.wait_for(m.DecisionRequested, lambda e: e.run_id == run_id, after=mark)
    assert again.reprompt_reason and "No targets are queued" in again.reprompt_reason

    grid = (await op.get(f"/api/sessions/{sid}/grids/{prompt.grid_id}")).json()
    fresh = [s["id"] for s in grid["squares"] if s["status"] is None and s["cls"] == "good"][:1]
    assert fresh, "the atlas has more good squares than were queued"
    mark = system.mark()
    assert (
        await op.post(f"/api/sessions/{sid}/targets", json={"target_ids": fresh})
    ).status_code == 202
    await system.wait_for(
        m.QueueUpdated, lambda e: any(str(i.target_id) == fresh[0] for i in e.items), after=mark
    )
    mark = system.mark()
    assert (
        await op.post(f"/api/sessions/{sid}/decision", json={"choice": "continue_grid"})
    ).status_code == 202
    await system.wait_for(m.SquareAcquired, lambda e: str(e.square_id) == fresh[0], after=mark)
    third = await system.wait_for(
        m.DecisionRequested, lambda e: e.run_id == run_id, after=mark, timeout=60
    )
    assert third.reprompt_reason is None

    mark = system.mark()
    assert (
        await op.post(f"/api/sessions/{sid}/decision", json={"choice": "next_grid"})
    ).status_code == 202
    loaded = await system.wait_for(m.GridLoaded, lambda e: e.run_id == run_id, after=mark)
    assert loaded.grid_name == "gamma-g2"
    last = await system.wait_for(
        m.DecisionRequested, lambda e: e.run_id == run_id, after=mark, timeout=60
    )
    assert last.grid_name == "gamma-g2" and not last.has_next_grid
    # the run has left gamma-g1: a target there is refused, not silently dropped
    grid = (await op.get(f"/api/sessions/{sid}/grids/{prompt.grid_id}")).json()
    left = [s["id"] for s in grid["squares"] if s["status"] is None][:1]
    r = await op.post(f"/api/sessions/{sid}/targets", json={"target_ids": left})
    assert r.status_code == 409, r.text
    assert "gamma-g1" in r.json()["detail"] and "gamma-g2" in r.json()["detail"]
    assert (
        await op.post(f"/api/sessions/{sid}/decision", json={"choice": "next_grid"})
    ).status_code == 202
    ended = await system.ended(run_id)
    assert ended.exit_reason == "completed"
    grids = (await op.get(f"/api/sessions/{sid}")).json()["grids"]
    assert [g["status"] for g in grids] == ["done", "done"]


async def test_stop_while_awaiting_a_decision(system: System) -> None:
    session = await system.session("delta", grids=2, pause=True)
    run_id = await system.start(session["id"])
    await system.wait_for(
        m.RunStateChanged,
        lambda e: e.run_id == run_id and e.state == "awaiting_decision",
        timeout=60,
    )
    await system.clients["operator"].post(f"/api/sessions/{session['id']}/stop")
    ended = await system.ended(run_id)
    assert ended.exit_reason == "stopped"


async def test_second_session_on_a_locked_microscope_ends_locked_without_connecting(
    system: System,
) -> None:
    first = await system.session("holder", grids=2, pause=True)
    second = await system.session("latecomer", grids=1)
    holder_run = await system.start(first["id"])
    await system.wait_for(m.LeaseGranted, lambda e: e.holder.run_id == holder_run)
    late_run = await system.start(second["id"])
    ended = await system.ended(late_run)
    assert ended.exit_reason == "locked"
    assert "microscope Krios 1 is locked by session holder" in (ended.detail or "")
    view = (await system.clients["viewer"].get(f"/api/sessions/{second['id']}")).json()
    assert view["lock_holder"]["session_id"] == first["id"]
    await system.log_line(late_run, "is locked by session holder")
    logs = (await system.clients["viewer"].get(f"/api/sessions/{second['id']}/logs")).json()
    texts = " | ".join(line["text"] for line in logs)
    assert "is locked by session holder" in texts and "connecting to Krios" not in texts
    scope = system.scopes["krios-1"]
    if getattr(scope, "connect_calls", 0):  # the task form: both runs share this object
        assert scope.connect_calls == 1, "only the holder may connect"
        assert getattr(scope, "connected", False), "the locked run must not disconnect it"
    await system.clients["operator"].post(f"/api/sessions/{first['id']}/stop")
    assert (await system.ended(holder_run)).exit_reason == "stopped"


@SLOW
async def test_what_session_api_commits_itself_is_announced(system: System) -> None:
    """A run row created ``starting``, a stop requested and the pause toggle with no live run
    change nothing another event carries: session-api announces them (``SessionChanged``),
    so every open page re-reads the session, not only the one that acted."""
    session = await system.session("delta", grids=2)
    sid, op = session["id"], system.clients["operator"]

    def mine(e: m.SessionChanged) -> bool:
        return str(e.session_id) == sid

    mark = system.mark()
    r = await op.put(f"/api/sessions/{sid}/pause-between-grids", json={"enabled": True})
    assert r.status_code == 200
    toggled = await system.wait_for(m.SessionChanged, mine, after=mark)
    assert toggled.run_id is None and toggled.change == "pause between grids on"
    assert toggled.requested_by == "operator" and toggled.microscope_id == "krios-1"

    mark = system.mark()
    run_id = await system.start(sid)
    started = await system.wait_for(m.SessionChanged, mine, after=mark)
    assert started.run_id == run_id and started.change == "run 1 starting"

    await system.wait_for(m.ExposureAcquired, lambda e: e.run_id == run_id)
    mark = system.mark()
    assert (await op.post(f"/api/sessions/{sid}/stop")).status_code == 202
    stopped = await system.wait_for(m.SessionChanged, mine, after=mark)
    assert stopped.run_id == run_id and stopped.change == "stop requested for run 1"
    await system.ended(run_id)

    refused = await system.clients["viewer"].put(
        f"/api/sessions/{sid}/pause-between-grids", json={"enabled": False}
    )
    assert refused.status_code == 403
    mark = system.mark()
    await op.put(f"/api/sessions/{sid}/pause-between-grids", json={"enabled": False})
    # one queue, in order: had the refused call announced anything, it would come first
    after = await system.wait_for(m.SessionChanged, mine, after=mark)
    assert after.change == "pause between grids off" and after.requested_by == "operator"
    changes = [e for e in system.projected if isinstance(e, m.SessionChanged) and mine(e)]
    assert len(changes) == 4, "a refused control changes nothing and announces nothing"


async def test_a_restarted_session_goes_on_where_it_stopped(system: System) -> None:
    """A stopped session started again resumes its grid: the same atlas and squares (no
    second atlas, nor a second set of squares on the grid), first what the stop left queued,
    and no square imaged before is picked again."""
    session = await system.session("resume", grids=1)
    sid, op, viewer = session["id"], system.clients["operator"], system.clients["viewer"]
    # the first exposure is held until the stop has landed: the stop then comes after one
    # exposure and before anything else, whatever the machine's load (a stop that landed
    # on the next square, after its image and before its holes, would queue it again)
    system.hold()
    first = await system.start(sid)
    atlas = await system.wait_for(m.AtlasAcquired, lambda e: e.run_id == first)
    holes = await system.wait_for(m.HolesFound, lambda e: e.run_id == first)
    await system.held()
    await op.post(f"/api/sessions/{sid}/stop")
    await system.wait_for(
        m.RunStateChanged, lambda e: e.run_id == first and e.state == RunState.STOPPING
    )
    system.release()
    await system.ended(first)
    imaged_before = {
        e.square_id
        for e in system.projected
        if isinstance(e, m.SquareAcquired) and e.run_id == first
    }
    queue = (await viewer.get(f"/api/sessions/{sid}/queue")).json()
    assert "acquiring" not in queue["counts"], "an ended run acquires nothing"
    assert all(i["status"] != "acquiring" for i in queue["items"])
    left = [i["target_id"] for i in queue["items"] if i["status"] == "queued"]
    assert left, "the stop came before the grid's queue was done"
    grid_id = str(atlas.grid_id)
    before = (await viewer.get(f"/api/sessions/{sid}/grids/{grid_id}")).json()

    mark = system.mark()
    system.hold()  # the second run's first movie waits while a hole is queued by hand
    second = await system.start(sid)
    await system.log_line(second, "has an atlas from an earlier run")
    await system.log_line(second, "going on with what the earlier run left queued")
    await system.held()
    await system.wait_for(m.GridLoaded, lambda e: e.run_id == second, after=mark)
    # a hole the first run found can be queued by hand (the run is told what it is)
    hole = holes.holes[-1].target_id
    r = await op.post(f"/api/sessions/{sid}/targets", json={"target_ids": [str(hole)]})
    assert r.status_code == 202, r.text
    await system.wait_for(
        m.QueueUpdated,
        lambda e: e.run_id == second and any(i.target_id == hole for i in e.items),
        after=mark,
    )
    system.release()
    acquired = await system.wait_for(
        m.SquareAcquired | m.ExposureAcquired,  # type: ignore[arg-type]
        lambda e: e.run_id == second,
        after=mark,
    )
    target = acquired.square_id if isinstance(acquired, m.SquareAcquired) else acquired.hole_id
    assert str(target) == left[0], "the earlier run's queue first, in its order"
    await system.ended(second, timeout=90)  # it runs out of targets: completed
    assert not any(
        isinstance(e, m.AtlasAcquired | m.SquaresFound)
        or (isinstance(e, m.SquareAcquired) and e.square_id in imaged_before)
        for e in system.projected[mark:]
        if getattr(e, "run_id", None) == second
    )
    runs = (await viewer.get(f"/api/sessions/{sid}/runs")).json()
    assert [(r["number"], r["id"]) for r in runs] == [(2, str(second)), (1, str(first))]
    exposures = (await viewer.get(f"/api/sessions/{sid}/exposures")).json()
    per_run = {r["id"]: sum(e["run_id"] == r["id"] for e in exposures) for r in runs}
    assert per_run == {r["id"]: r["exposures"] for r in runs} and all(per_run.values())
    after = (await viewer.get(f"/api/sessions/{sid}/grids/{grid_id}")).json()
    assert after["atlas"]["id"] == before["atlas"]["id"] == str(atlas.atlas_id)
    assert sorted(s["id"] for s in after["squares"]) == sorted(s["id"] for s in before["squares"])


async def test_a_restarted_session_leaves_out_the_grids_it_finished(system: System) -> None:
    session = await system.session("eps", grids=2, pause=True)
    sid, op = session["id"], system.clients["operator"]
    first = await system.start(sid)
    await system.wait_for(m.DecisionRequested, lambda e: e.run_id == first, timeout=60)
    await op.post(f"/api/sessions/{sid}/decision", json={"choice": "next_grid"})
    await system.wait_for(m.GridLoaded, lambda e: e.run_id == first and e.grid_name == "eps-g2")
    await op.post(f"/api/sessions/{sid}/stop")
    await system.ended(first)

    mark = system.mark()
    second = await system.start(sid)
    await system.log_line(second, "grids screened by earlier runs, left out: eps-g1")
    loaded = await system.wait_for(m.GridLoaded, lambda e: e.run_id == second, after=mark)
    assert loaded.grid_name == "eps-g2"
    await op.post(f"/api/sessions/{sid}/stop")
    await system.ended(second)
