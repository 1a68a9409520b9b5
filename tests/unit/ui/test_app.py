"""Health, readiness, metrics, static files, the log download and the session browser."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from unit.ui.conftest import World, login, start_run

from proto.bus.memory import MemoryBus
from proto.states import ExitReason, RunState
from ui.app import create_app
from ui.metrics import UiBusObserver
from ui.plots import histogram, scatter
from ui.render import age, bytes_h, hours, img, num, pct
from ui.settings import UiSettings


async def test_health_ready_metrics(ui: httpx.AsyncClient) -> None:
    assert (await ui.get("/healthz")).text == "ok"
    assert (await ui.get("/readyz")).status_code == 200
    UiBusObserver().handled("transient.ui.0123", "ok", 0.01)
    body = (await ui.get("/metrics")).text
    assert "gridpilot_ui_sse_streams" in body
    assert 'gridpilot_ui_bus_handled_total{outcome="ok",queue="transient.ui"}' in body
    assert "transient.ui.0123" not in body


async def test_not_ready_before_the_lifespan() -> None:
    async with MemoryBus() as bus:
        app = create_app(UiSettings(), bus)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://ui.test"
        ) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503


async def test_vendored_htmx_is_served(ui: httpx.AsyncClient) -> None:
    for path in (
        "/static/vendor/htmx-2.0.11.min.js",
        "/static/vendor/htmx-ext-sse-2.2.4.min.js",
        "/static/app.js",
        "/static/app.css",
    ):
        assert (await ui.get(path)).status_code == 200, path


async def test_log_download_is_proxied(ui: httpx.AsyncClient, world: World) -> None:
    await world.fake.log(world.session, "acquisition", "first ☃")
    await world.fake.log(world.session, "processing", "second")
    await login(ui, "viewer")
    r = await ui.get(f"/sessions/{world.session.id}/logs.txt?panel=acquisition")
    assert r.status_code == 200 and "first ☃" in r.text and "second" not in r.text
    assert "attachment" in r.headers["content-disposition"]


async def test_session_list_filters(ui: httpx.AsyncClient, world: World) -> None:
    world.fake.add_session("on the glacios", "glacios")
    await login(ui, "operator")
    page = (await ui.get("/sessions?microscope=glacios")).text
    assert "on the glacios" in page and "apoferritin" not in page
    page = (await ui.get("/sessions?state=idle")).text
    assert '<option value="idle" selected>never started</option>' in page
    assert ">stopping</option>" in page, "a filter's option, not a state in progress"
    assert "on the glacios" in page and "apoferritin" in page
    await ui.post(f"/sessions/{world.session.id}/start", headers={"HX-Request": "true"})
    page = (await ui.get("/sessions?state=idle")).text
    assert "on the glacios" in page and "apoferritin" not in page
    part = await ui.get("/sessions", headers={"HX-Request": "true", "HX-Target": "session-list"})
    assert part.text.lstrip().startswith('<section id="session-list"')


async def test_browse_draws_targets_and_queues_on_click(
    ui: httpx.AsyncClient, world: World
) -> None:
    await login(ui, "operator")
    await ui.post(f"/sessions/{world.session.id}/start", headers={"HX-Request": "true"})
    world.fake.add_exposures(world.session, 20)
    page = (await ui.get(f"/sessions/{world.session.id}/browse")).text
    number = world.fake.sessions[world.session.id].runs[-1]["number"]
    assert '<h2 id="h-runs">Runs <span class="muted">' in page
    assert page.count(f'<td class="num">#{number}</td>') == 21, "the run's row, and each exposure's"
    assert page.count('class="tgt square') == 6 and page.count('class="tgt hole') == 5
    assert 'href="/images/' in page and "truncated movie: 12 of 40 frames" in page
    assert re.search(r'<a href="(/images/[^"]+)" target="_blank"[^>]*><img src="\1"', page), (
        "a thumbnail opens its image at full size"
    )
    assert "Defocus over time" in page and 'role="img"' in page
    grid = world.session.grids[0]
    square = next(t for t in world.session.targets.values() if t["kind"] == "square")
    r = await ui.post(
        f"/sessions/{world.session.id}/targets",
        data={"target_id": str(square["id"]), "action": "queue", "grid": str(grid.id)},
        headers={"HX-Request": "true"},
    )
    assert r.text.lstrip().startswith('<section id="atlas"')
    assert "qs-queued" in r.text and "activate to dequeue" in r.text
    img_r = await ui.get(f"/images/{grid.atlas_id}.png")
    assert img_r.status_code == 200 and img_r.content.startswith(b"\x89PNG")


async def test_viewer_cannot_click_targets(ui: httpx.AsyncClient, world: World) -> None:
    await login(ui, "viewer")
    page = (await ui.get(f"/sessions/{world.session.id}/browse")).text
    assert 'class="tgt square' in page and "hx-post" not in page.split('id="atlas"')[1]


def test_words() -> None:
    assert bytes_h(999) == "999 B" and bytes_h(1_500_000) == "1.5 MB" and bytes_h(None) == "—"
    assert pct(0.734) == "73 %" and pct(1.7) == "100 %"
    assert hours(0.5) == "30 min" and hours(30) == "30.0 h" and hours(100) == "4.2 d"
    assert hours(float("inf")) == "> 1 year" and hours(None) == "—"
    assert age(5) == "5 s" and age(125) == "2 min 5 s" and age(7300) == "2 h 1 min"
    assert num(1234567) == "1\u202f234\u202f567" and num(float("nan")) == "—"
    assert img("/api/images/x.png") == "/images/x.png" and img(None) == ""


def test_plots_are_accessible_svg() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    svg = scatter([(t0 + timedelta(minutes=i), float(i)) for i in range(10)], title="A", ylabel="y")
    assert svg.startswith("<svg") and "<title" in svg and svg.count("<circle") == 10
    flat = histogram([3.0] * 5, title="Flat", xlabel="x")
    assert flat.count("<rect") == 1
    empty = histogram([], title="Empty", xlabel="x")
    assert "No data yet" in empty
    odd = scatter([(t0, float("nan")), (t0, float("inf"))], title="Odd", ylabel="y")
    assert "No data yet" in odd


def test_plot_axes_have_round_ticks_and_say_what_hollow_means() -> None:
    t0 = datetime(2025, 1, 1, 9, 7, tzinfo=UTC)
    hour = [(t0 + timedelta(minutes=i), float(i)) for i in range(0, 61, 3)]
    svg = scatter(hour, title="Hour", ylabel="y", flagged=[i == 2 for i in range(len(hour))])
    labels = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
    assert {"09:15", "09:30", "09:45", "10:00"} <= set(labels), labels
    assert "low confidence" in labels
    days = [(t0 + timedelta(hours=6 * i), 1.0 + i) for i in range(9)]
    labels = re.findall(
        r'<text class="tick"[^>]*>([^<]*)</text>', scatter(days, title="D", ylabel="y")
    )
    assert "02 Jan 00:00" in labels and "low confidence" not in labels
    hist = histogram([5.6 + i * 0.9 for i in range(26)], title="H", xlabel="x")
    labels = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', hist)
    assert {"10", "15", "20", "25"} <= set(labels), labels


async def test_the_browser_says_when_its_run_took_new_exposures(
    ui: httpx.AsyncClient, world: World
) -> None:
    run = await start_run(ui, world)
    page = (await ui.get(f"/sessions/{world.session.id}/browse")).text
    news = f"/sessions/{world.session.id}/browse/news?run={run['id']}&amp;seen=0"
    assert f'hx-get="{news}" hx-trigger="every 10s"' in page
    url = news.replace("&amp;", "&")
    quiet = (await ui.get(url)).text
    assert re.search(r'<p id="browse-news"[^>]*hx-trigger="every 10s"[^>]*></p>', quiet)
    run["exposures"] = 3
    assert "3 new exposures since this page was loaded" in (await ui.get(url)).text
    await world.fake.set_state(world.session, RunState.ENDED, ExitReason.STOPPED)
    ended = (await ui.get(url)).text
    assert "and the run has ended" in ended and "hx-trigger" not in ended
    idle = (await ui.get(f"/sessions/{world.other.id}/browse")).text
    assert 'id="browse-news"' not in idle, "no run, nothing to watch"
