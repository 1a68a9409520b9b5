"""Pages and control POSTs against the fake session-api: what each state shows, and that a
control's answer is only its outcome for the message area (the stream draws the rest)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from unit.ui.conftest import World, login, start_run
from unit.ui.fake_api import volume

from proto.states import ExitReason, RunState

LIVE_PARTS = ('id="controls"', 'id="process"', 'id="popups"', 'id="disk"', 'id="queue"')


async def press(
    ui: httpx.AsyncClient, path: str, data: dict[str, str] | None = None
) -> httpx.Response:
    """POST as a control's button does (htmx, its target the message area); the answer is
    for that area only: it draws none of the live parts."""
    headers = {"HX-Request": "true", "HX-Target": "messages"}
    r = await ui.post(path, data=data, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["HX-Reswap"] == "innerHTML" and "HX-Retarget" not in r.headers
    assert not [part for part in LIVE_PARTS if part in r.text], r.text
    return r


async def page(ui: httpx.AsyncClient, world: World, session: str = "session") -> str:
    return (await ui.get(f"/sessions/{getattr(world, session).id}")).text


async def test_dashboard_lists_every_microscope(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "viewer")
    r = await ui.get("/")
    assert r.status_code == 200
    assert 'id="scope-krios-1"' in r.text and 'id="scope-glacios"' in r.text
    assert 'sse-connect="/stream/facility"' in r.text
    assert "<title>Facility · Gridpilot</title>" in r.text


async def test_dashboard_shows_holder_and_links_session(
    ui: httpx.AsyncClient, world: World
) -> None:
    await login(ui, "operator")
    await ui.post(f"/sessions/{world.session.id}/start", headers={"HX-Request": "true"})
    r = await ui.get("/")
    assert f'href="/sessions/{world.session.id}"' in r.text
    assert "scope-pc · PID 4242" in r.text
    assert "running" in r.text


async def test_session_page_before_first_start(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    r = await ui.get(f"/sessions/{world.session.id}")
    assert r.status_code == 200
    text = r.text
    assert '<h1 id="h-session">apoferritin 2025-03</h1>' in text
    assert f'href="/sessions/{world.session.id}/browse">Go to session browser' in text
    assert "This session has not been started yet." in text
    assert 'class="main start"' in text and "Force start" not in text
    assert 'aria-checked="false"' in text and "toggle off" in text
    assert "Nothing is queued." in text
    for panel in ("acquisition", "processing"):
        assert f'sse-swap="log-{panel}"' in text
        assert f"/logs.txt?panel={panel}" in text
    assert "<main" in text and 'aria-label="Main"' in text and "Skip to content" in text


async def test_running_session_shows_stop_and_process(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    r = await press(ui, f"/sessions/{world.session.id}/start")
    assert r.text.strip() == "", "a start that went through says nothing (and clears a refusal)"
    text = await page(ui, world)
    assert 'class="main stop"' in text and ">running<" in text
    # every button of a live part answers into the message area (the set-up card is not one:
    # its Archive button answers with the card)
    start = text.index('<section id="session-setup"')
    live = text[:start] + text[text.index("</section>", start) :]
    assert live.count('hx-target="#messages"') == live.count("hx-post=") == 2
    assert "data-v=" not in text


async def test_stop_shows_stopping_and_the_stop_popup(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    await press(ui, f"/sessions/{world.session.id}/start")
    await press(ui, f"/sessions/{world.session.id}/stop")
    text = await page(ui, world)
    assert "stopping…</button>" in text and "disabled" in text
    assert "Stop signal received" in text


async def test_a_stop_asked_for_shows_stopping_before_the_run_says_so(
    ui: httpx.AsyncClient, world: World
) -> None:
    """session-api commits the request at once (and announces it); the run says
    ``stopping`` when it gets the command: the controls show the stop from the first."""
    run = await start_run(ui, world)
    run["stop_requested"] = True
    text = await page(ui, world)
    assert ">running<" in text and "stopping…</button>" in text and 'class="main stop"' not in text


async def test_a_stop_honoured_at_once_still_shows_its_notice(
    ui: httpx.AsyncClient, world: World
) -> None:
    await login(ui, "operator")
    await press(ui, f"/sessions/{world.session.id}/start")
    await press(ui, f"/sessions/{world.session.id}/stop")
    await world.fake.set_state(world.session, RunState.ENDED, ExitReason.STOPPED)
    text = await page(ui, world)
    assert "Run 1 stopped" in text and "The run stopped after finishing" in text
    assert "Stop signal received" not in text, "said in the past tense, of its run"
    assert 'class="main start"' in text


@pytest.mark.parametrize(
    ("reason", "title"),
    [
        (ExitReason.LOST, "Lease lost"),
        (ExitReason.KILLED, "Run 1 was force-killed"),
        (ExitReason.FAILED, "Run 1 failed"),
        (ExitReason.STOPPED, "Run 1 stopped"),
    ],
)
async def test_how_a_run_ended_is_shown_until_someone_takes_note(
    ui: httpx.AsyncClient, world: World, reason: ExitReason, title: str
) -> None:
    """A notice about how the last run ended names that run and when it ended (a visitor
    later cannot take it for news), and goes for everyone once an operator took note."""
    run = await start_run(ui, world)
    await world.fake.set_state(world.session, RunState.ENDED, reason)
    text = await page(ui, world)
    assert title in text and f'data-key="{reason}-{run["id"]}"' in text
    assert re.search(r'class="popup-run"[^>]*>run 1, ended \d{4}-\d\d-\d\d [\d:]+ UTC<', text)
    ack = f'hx-post="/sessions/{world.session.id}/runs/{run["id"]}/acknowledge"'
    assert ack in text and ">Acknowledge</button>" in text
    await login(ui, "viewer")
    text = await page(ui, world)
    assert title in text and ack not in text and 'class="link dismiss"' in text, "hides it locally"
    await login(ui, "operator")
    r = await press(ui, f"/sessions/{world.session.id}/runs/{run['id']}/acknowledge")
    assert r.text.strip() == ""
    assert title not in await page(ui, world)
    assert run["acknowledged_by"] == "operator"


async def test_a_new_run_leaves_the_last_ones_notices_behind(
    ui: httpx.AsyncClient, world: World
) -> None:
    await start_run(ui, world)
    await world.fake.set_state(world.session, RunState.ENDED, ExitReason.LOST)
    assert "Lease lost" in await page(ui, world)
    await press(ui, f"/sessions/{world.session.id}/start")
    text = await page(ui, world)
    assert "Lease lost" not in text and ">running<" in text


async def test_a_run_that_stopped_long_ago_says_nothing(
    ui: httpx.AsyncClient, world: World
) -> None:
    run = await start_run(ui, world)
    await world.fake.set_state(world.session, RunState.ENDED, ExitReason.STOPPED)
    run["ended_at"] -= timedelta(minutes=11)
    text = await page(ui, world)
    assert f'data-key="stopped-{run["id"]}"' not in text and "Run 1 stopped" not in text


async def test_staff_sees_admin_buttons_with_confirmations(
    ui: httpx.AsyncClient, world: World
) -> None:
    await login(ui, "staff")
    text = (await ui.get(f"/sessions/{world.session.id}")).text
    staff = text[text.index('aria-label="Staff controls"') : text.index('id="session-setup"')]
    assert staff.count("hx-confirm=") == 3
    assert "Force-kill every process" in text and "SIGKILL" in text
    assert "Remove the scope lock of Krios 1" in text
    assert 'aria-label="Staff controls"' in text


async def test_viewer_cannot_press_anything(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "viewer")
    text = (await ui.get(f"/sessions/{world.session.id}")).text
    assert 'title="Viewers cannot start a run"' in text
    assert "Force start" not in text


async def test_forbidden_post_shows_role_message(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    r = await press(ui, f"/sessions/{world.session.id}/kill")
    # answered 200 to htmx: a 4xx is an error in the browser's console, and nothing failed
    assert r.headers["Gridpilot-Status"] == "403"
    assert "<strong>Not allowed:</strong> Only staff can do this" in r.text
    assert "you are signed in as an operator." in r.text
    plain = await ui.post(f"/sessions/{world.session.id}/kill")
    assert plain.status_code == 403, "not from htmx: the status says it"
    other = await ui.post(f"/sessions/{world.session.id}/kill", headers={"HX-Request": "true"})
    assert other.status_code == 200 and other.headers["HX-Retarget"] == "#messages"


@pytest.mark.parametrize("status", [409, 422])
async def test_refusals_show_the_api_detail(
    ui: httpx.AsyncClient, world: World, status: int
) -> None:
    await login(ui, "operator")
    detail = (
        "run 3 is running"
        if status == 409
        else [{"loc": ["body", "enabled"], "msg": "Input should be a valid boolean"}]
    )
    world.fake.fail_next = (status, detail)
    r = await press(ui, f"/sessions/{world.session.id}/start")
    assert r.headers["Gridpilot-Status"] == str(status)
    expected = "run 3 is running" if status == 409 else "enabled: Input should be a valid boolean"
    assert expected in r.text and "<strong>Refused:</strong>" in r.text


async def test_second_start_is_a_conflict(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    await press(ui, f"/sessions/{world.session.id}/start")
    r = await press(ui, f"/sessions/{world.session.id}/start")
    assert r.headers["Gridpilot-Status"] == "409" and "run 1 is running" in r.text


async def test_unknown_session_is_a_404_page(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "viewer")
    r = await ui.get("/sessions/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and '<h1 id="h-error">Not found</h1>' in r.text


async def test_a_bad_url_is_a_422_page(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "viewer")
    r = await ui.get("/sessions/not-a-uuid")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert '<h1 id="h-error">Refused</h1>' in r.text
    assert "session_id: Input should be a valid UUID" in r.text
    assert 'class="username">viewer<' in r.text, "the page keeps its top bar"


@pytest.mark.parametrize(
    ("action", "form", "field"),
    [
        ("pause-between-grids", {"enabled": "maybe"}, "enabled"),
        ("decision", {"choice": "x"}, "choice"),
    ],
)
async def test_a_bad_control_value_is_a_422_message(
    ui: httpx.AsyncClient, world: World, action: str, form: dict[str, str], field: str
) -> None:
    await login(ui, "operator")
    r = await press(ui, f"/sessions/{world.session.id}/{action}", form)
    assert r.headers["Gridpilot-Status"] == "422"
    assert r.headers["content-type"].startswith("text/html")
    assert '<p class="message refused" role="alert">' in r.text
    assert "<strong>Refused:</strong>" in r.text and f"{field}: Input should be" in r.text
    assert not [path for _, path in world.fake.calls if path.endswith(action)], "never sent"


async def test_a_bad_url_still_asks_to_log_in_first(ui: httpx.AsyncClient) -> None:
    r = await ui.get("/sessions/not-a-uuid")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_api_down_is_a_503_page(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "viewer")
    world.fake.fail_next = (503, "bus unavailable")
    r = await ui.get("/")
    assert r.status_code == 503 and "session-api is unavailable" in r.text


async def test_pause_toggle_turns_green(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    await press(ui, f"/sessions/{world.session.id}/start")
    await press(ui, f"/sessions/{world.session.id}/pause-between-grids", {"enabled": "true"})
    text = await page(ui, world)
    assert 'aria-checked="true"' in text and "toggle on" in text
    assert '"enabled": "false"' in text


async def test_decision_prompt_and_reprompt(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    await press(ui, f"/sessions/{world.session.id}/start")
    await press(ui, f"/sessions/{world.session.id}/pause-between-grids", {"enabled": "true"})
    await world.fake.ask_decision(world.session)
    text = await page(ui, world)
    assert 'role="alertdialog"' in text and "Continue current grid" in text
    assert "Next grid" in text and "grid-1 has no more targets" in text
    await press(ui, f"/sessions/{world.session.id}/decision", {"choice": "continue_grid"})
    text = await page(ui, world)
    assert "add targets first" in text and 'class="reprompt"' in text
    assert "Pause between grids is off now" not in text
    await press(ui, f"/sessions/{world.session.id}/pause-between-grids", {"enabled": "false"})
    text = await page(ui, world)
    assert 'role="alertdialog"' in text, "turning the pause off answers nothing"
    assert "Pause between grids is off now" in text and "waits for an answer here" in text


async def test_disk_low_decision_is_worded_as_a_disk_pause(
    ui: httpx.AsyncClient, world: World
) -> None:
    await login(ui, "viewer")
    world.fake.scopes["krios-1"].volumes = [volume("data", free=0.03, hours_left=0.4)]
    world.fake.sessions[world.session.id].runs.append({})  # replaced below
    world.fake.sessions[world.session.id].runs.clear()
    await login(ui, "operator")
    await press(ui, f"/sessions/{world.session.id}/start")
    await world.fake.ask_decision(world.session, cause="disk_low")
    page = (await ui.get(f"/sessions/{world.session.id}")).text
    assert "Paused: disk low" in page and "Disk low" in page
    assert "level-critical" in page and "24 min left" in page


async def test_lock_warning_links_the_holder(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    await press(ui, f"/sessions/{world.session.id}/start")
    text = await page(ui, world, "other")
    assert "Scope in use" in text
    assert f'href="/sessions/{world.session.id}">Go to session apoferritin 2025-03' in text
    await press(ui, f"/sessions/{world.other.id}/start")
    text = await page(ui, world, "other")
    assert "Scope locked" in text
    # said once, as the run found it (it was said twice, the second time from the run's detail)
    locked = "did not start: microscope Krios 1 is locked by session apoferritin 2025-03."
    assert locked in text
    assert ">locked<" in text
    assert "Scope in use" in text, "who holds the scope now is still shown, with its link"
    assert "is free now" not in text
    await press(ui, f"/sessions/{world.session.id}/stop")
    await world.fake.set_state(world.session, RunState.ENDED, ExitReason.STOPPED)
    text = await page(ui, world, "other")
    assert "Scope locked" in text and "Krios 1 is free now." in text
    assert "Scope in use" not in text


async def test_lost_and_killed_runs(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "staff")
    await press(ui, f"/sessions/{world.session.id}/start")
    r = await press(ui, f"/sessions/{world.session.id}/kill")
    assert "Force-kill sent." in r.text
    text = await page(ui, world)
    assert "was force-killed" in text and 'class="main start"' in text
    await press(ui, f"/sessions/{world.session.id}/start")
    r = await press(ui, f"/sessions/{world.session.id}/release-lock")
    assert "Scope lock of Krios 1 removed from apoferritin 2025-03." in r.text
    text = await page(ui, world)
    assert "Lease lost" in text and ">lost<" in text


async def test_odd_data_renders(ui: httpx.AsyncClient, world: World) -> None:
    fake = world.fake
    fake.add_scope("tiny", "Tälos ☃ <b>", volumes=[])
    odd = fake.add_session("Ωmega <script>alert(1)</script>", "tiny", grids=0)
    fake.scopes["krios-1"].volumes = [
        volume("huge", free=0.5, total=10**18, hours_left=10**9),
        volume("zero", free=0.0, total=0, hours_left=None),
    ]
    await login(ui, "operator")
    page = (await ui.get(f"/sessions/{odd.id}")).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "No data volume reported yet." in page
    dash = (await ui.get("/")).text
    assert "500.0 PB" in dash and "&gt; 1 year" in dash and "Tälos ☃ &lt;b&gt;" in dash
    browse = (await ui.get(f"/sessions/{odd.id}/browse")).text
    assert "This session has no grids." in browse and "No exposure yet." in browse


async def test_session_state_for_ended_run(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "operator")
    await ui.post(f"/sessions/{world.session.id}/start", headers={"HX-Request": "true"})
    await world.fake.set_state(world.session, RunState.ENDED, ExitReason.COMPLETED)
    page = (await ui.get(f"/sessions/{world.session.id}")).text
    assert 'id="exit-reason" class="reason-completed">completed' in page
    assert 'class="main start"' in page and "UTC" in page


async def test_failed_exposures_show_in_the_process_panel(
    ui: httpx.AsyncClient, world: World
) -> None:
    run = await start_run(ui, world)
    page = (await ui.get(f"/sessions/{world.session.id}")).text
    assert "failed</a>" not in page
    run["exposures"], run["exposures_failed"] = 12, 3
    page = (await ui.get(f"/sessions/{world.session.id}")).text
    assert f'href="/sessions/{world.session.id}/browse#exposures"' in page
    assert re.search(r">12 <a [^>]*>3 failed</a>", page)
