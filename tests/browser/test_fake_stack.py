"""The pages in Chromium against the fake session-api: controls, live panels, pop-ups,
reconnects, roles. (The walk on the real embedded stack is in ``test_walk.py``.)"""

from __future__ import annotations

import asyncio
import re

import pytest
from browser.helpers import SCREENSHOTS, WALL, FakeStack, csrf, login, new_page, stream_open
from playwright.async_api import Browser, Page, Route, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from proto.states import ExitReason, RunState

pytestmark = pytest.mark.browser


SSE_SEEN = """document.addEventListener('htmx:sseBeforeMessage',
    (e) => (window.__sse = window.__sse || []).push(e.detail.type));"""
"""Notes the type of every stream event the page gets (``window.__sse``)."""


async def open_session(browser: Browser, stack: FakeStack, who: str) -> Page:
    page = await new_page(browser)
    await page.add_init_script(SSE_SEEN)
    await login(page, stack.url, who, f"/sessions/{stack.session.id}")
    await stream_open(page)
    return page


def console_errors(page: Page) -> list[str]:
    """The page's console errors and uncaught exceptions from now on (a live list)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


async def test_operator_walk(fake_stack: FakeStack, browser: Browser) -> None:
    stack, fake = fake_stack, fake_stack.fake
    page = await open_session(browser, stack, "operator")
    await expect(page.get_by_role("group", name="Staff controls")).to_have_count(0)
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    await expect(page.locator("#run-state")).to_have_text("running")

    await fake.log(stack.session, "acquisition", "moving stage to square 1")
    await fake.log(stack.session, "processing", "CTF 3.4 Å on exposure 1")
    await expect(page.locator("#log-acquisition")).to_contain_text("moving stage to square 1")
    await expect(page.locator("#log-processing")).to_contain_text("CTF 3.4 Å")

    toggle = page.locator("#pause-toggle")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-checked", "true")
    await expect(toggle).to_have_class("toggle on")

    await fake.ask_decision(stack.session)
    prompt = page.get_by_role("alertdialog")
    await expect(prompt).to_contain_text("Paused between grids")
    await prompt.get_by_role("button", name="Continue current grid").click()
    await expect(prompt.locator(".reprompt")).to_contain_text("add targets first")

    browse = await page.context.new_page()
    await browse.goto(f"{stack.url}/sessions/{stack.session.id}/browse")
    square = browse.locator("#atlas g.tgt").first
    await square.click()
    await expect(browse.locator("#atlas g.tgt").first).to_have_class(
        "tgt square cls-good qs-queued"
    )
    await expect(page.locator("#queue")).to_contain_text("queued")  # live QueueUpdated
    await browse.close()

    await prompt.get_by_role("button", name="Continue current grid").click()
    await expect(page.get_by_role("alertdialog")).to_have_count(0)
    await expect(page.locator("#run-state")).to_have_text("running")

    await page.get_by_role("button", name="Stop", exact=True).click()
    # while stopping, or (a stop honoured at once) once it has ended
    await expect(page.locator("#popups")).to_contain_text(
        re.compile(r"Stop signal received|Run \d+ stopped")
    )
    await expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible()
    await expect(page.locator("#exit-reason")).to_have_text("stopped")


async def test_operator_direct_admin_post_is_forbidden(
    fake_stack: FakeStack, browser: Browser
) -> None:
    page = await open_session(browser, fake_stack, "operator")
    for action in ("force-start", "release-lock", "kill"):
        r = await page.request.post(
            f"{fake_stack.url}/sessions/{fake_stack.session.id}/{action}", headers=await csrf(page)
        )
        assert r.status == 403, action
        assert (
            "Not allowed" in await r.text() and "you are signed in as an operator" in await r.text()
        )


async def test_staff_force_kill_then_start(fake_stack: FakeStack, browser: Browser) -> None:
    page = await open_session(browser, fake_stack, "staff")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    messages: list[str] = []

    async def accept(dialog: object) -> None:
        messages.append(dialog.message)  # type: ignore[attr-defined]
        await dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", accept)
    await page.get_by_role("button", name="Force-kill all session processes").click()
    await expect(page.locator("#exit-reason")).to_have_text("killed")
    assert "SIGKILL" in messages[0]
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()


async def test_lock_warning_links_the_holder(fake_stack: FakeStack, browser: Browser) -> None:
    page = await open_session(browser, fake_stack, "operator")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    other = await page.context.new_page()
    await other.goto(f"{fake_stack.url}/sessions/{fake_stack.other.id}")
    await expect(other.locator("#popups")).to_contain_text("Scope in use")
    await other.get_by_role("button", name="Start", exact=True).click()
    await expect(other.locator("#popups")).to_contain_text("Scope locked")
    await expect(other.locator("#exit-reason")).to_have_text("locked")
    await other.get_by_role("link", name="Go to session apoferritin 2025-03").first.click()
    await other.wait_for_url(f"{fake_stack.url}/sessions/{fake_stack.session.id}")


async def test_a_control_answer_draws_no_part(fake_stack: FakeStack, browser: Browser) -> None:
    """One writer per live part: the answer to Start reports its outcome in the message area
    only; the new state comes by the stream. With the stream closed, the page keeps showing
    Start after the answer; once the stream is back, it shows the run."""
    stack = fake_stack
    page = await open_session(browser, stack, "operator")
    errors = console_errors(page)
    await page.evaluate(
        "() => { window.__src = document.querySelector('[sse-connect]')"
        "['htmx-internal-data'].sseEventSource; window.__src.close(); }"
    )
    async with page.expect_response(f"**/sessions/{stack.session.id}/start") as answer:
        await page.get_by_role("button", name="Start", exact=True).click()
    assert (await answer.value).status == 200
    await expect(page.get_by_role("button", name="Start", exact=True)).to_be_enabled()
    await expect(page.locator("#process")).to_contain_text("not been started yet")
    assert errors == []
    await page.evaluate("() => window.__src.onerror(new Event('error'))")  # htmx reconnects
    await stream_open(page)
    await expect(page.locator("#run-state")).to_have_text("running")
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()


async def test_a_late_answer_lands_in_the_messages_only(
    fake_stack: FakeStack, browser: Browser
) -> None:
    """The answer to Start reaches the page after the stream has drawn the run and its end
    (so the pressed button is gone): it cannot put back a state that has passed, and it still
    lands in the message area without an error (htmx looks a retarget up from the pressed,
    by then detached, button: the button names its target itself)."""
    stack, fake = fake_stack, fake_stack.fake
    page = await open_session(browser, stack, "operator")
    errors = console_errors(page)
    fake.fail_next = (409, "the toggle is refused, to leave a message")
    fake.fail_only = "/pause-between-grids"  # the stream's refreshes may come first
    await page.locator("#pause-toggle").click()
    await expect(page.locator("#messages")).to_contain_text("to leave a message")
    held: asyncio.Future[Route] = asyncio.get_running_loop().create_future()
    await page.route("**/start", lambda route: held.set_result(route))
    await page.get_by_role("button", name="Start", exact=True).click()
    route = await asyncio.wait_for(held, 10)
    answer = await route.fetch()  # the fake has started the run
    await expect(page.locator("#run-state")).to_have_text("running")  # pushed by the stream
    await fake.set_state(stack.session, RunState.ENDED, ExitReason.KILLED)
    await expect(page.locator("#exit-reason")).to_have_text("killed")
    await route.fulfill(response=answer)
    await expect(page.locator("#messages")).to_be_empty()  # the answer: nothing to say
    await expect(page.locator("#exit-reason")).to_have_text("killed")
    await expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible()
    assert errors == []


async def test_back_to_back_pushes_of_a_part_both_land(
    fake_stack: FakeStack, browser: Browser
) -> None:
    """htmx processes swapped-in content when it settles (20 ms after the swap by default);
    until then the new part has no stream listener, and a push arriving in between was lost
    (seen: a run's end pushed 24 ms after its start never showed). Settling at once keeps it.
    (The two pushes are made after the stream's first push of every part has landed.)"""
    page = await open_session(browser, fake_stack, "operator")
    await page.wait_for_function("(window.__sse || []).includes('process')")
    await page.evaluate(
        r"""() => {
            const src = document.querySelector('[sse-connect]')['htmx-internal-data']
                .sseEventSource;
            const el = document.querySelector('#process');
            const push = (text) => src.dispatchEvent(new MessageEvent('process', {
                data: el.outerHTML.replace(/(<h2 id="h-process">)[^<]*/, `$1${text}`)}));
            push('first');
            push('second');
        }"""
    )
    await expect(page.locator("#h-process")).to_have_text("second")


async def test_reconnect_loses_no_line(fake_stack: FakeStack, browser: Browser) -> None:
    stack, fake = fake_stack, fake_stack.fake
    page = await open_session(browser, stack, "operator")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#log-acquisition")).to_contain_text("run 1 started")
    for i in range(5):
        await fake.log(stack.session, "acquisition", f"line {i}")
    await expect(page.locator("#log-acquisition li")).to_have_count(6)  # + "run 1 started"
    # Drop the stream as a network failure would; htmx reconnects with the cursor.
    await page.evaluate(
        """() => { const el = document.querySelector('[sse-connect]');
                   const src = el['htmx-internal-data'].sseEventSource;
                   src.close(); src.onerror(new Event('error')); }"""
    )
    await page.wait_for_function("document.documentElement.dataset.stream === 'down'")
    for i in range(5, 10):
        await fake.log(stack.session, "acquisition", f"line {i}")
    await stream_open(page)
    for i in range(10, 12):
        await fake.log(stack.session, "acquisition", f"line {i}")
    lines = page.locator("#log-acquisition li")
    await expect(lines).to_have_count(13)
    texts = await page.locator("#log-acquisition li .txt").all_inner_texts()
    assert texts == ["run 1 started"] + [f"line {i}" for i in range(12)]


async def running_with_lines(browser: Browser, stack: FakeStack, n: int) -> Page:
    """An operator's session page with a run started and ``n`` acquisition lines after its
    first."""
    page = await open_session(browser, stack, "operator")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#log-acquisition")).to_contain_text("run 1 started")
    for i in range(n):
        await stack.fake.log(stack.session, "acquisition", f"line {i}")
    await expect(page.locator("#log-acquisition li")).to_have_count(n + 1)
    return page


async def test_follow_stops_when_scrolled_up(fake_stack: FakeStack, browser: Browser) -> None:
    stack = fake_stack
    page = await running_with_lines(browser, stack, 80)
    box = page.locator(".logpanel[data-panel=acquisition] .log-scroll")
    follow = page.locator(".logpanel[data-panel=acquisition] .follow")
    await box.hover()
    await page.mouse.wheel(0, -400)  # the reader's wheel, over the box
    await expect(follow).to_have_attribute("aria-pressed", "false")
    await page.wait_for_function(
        "() => document.querySelector('.logpanel[data-panel=acquisition] .log-scroll')"
        ".scrollTop > 0"
    )
    top = await box.evaluate("b => b.scrollTop")
    await stack.fake.log(stack.session, "acquisition", "more")
    await expect(page.locator("#log-acquisition li")).to_have_count(82)
    assert await box.evaluate("b => b.scrollTop") == top
    await follow.click()
    await expect(follow).to_have_attribute("aria-pressed", "true")
    assert await box.evaluate("b => b.scrollHeight - b.scrollTop - b.clientHeight < 24")
    await box.hover()
    await page.mouse.down()  # a drag (headless Chromium draws no scrollbar: move it here)
    await box.evaluate("b => { b.scrollTop = 0; }")
    await expect(follow).to_have_attribute("aria-pressed", "false")
    await page.mouse.up()
    await follow.click()
    await expect(follow).to_have_attribute("aria-pressed", "true")
    await box.focus()
    await page.keyboard.press("PageUp")  # and the keyboard
    await expect(follow).to_have_attribute("aria-pressed", "false")


async def test_follow_survives_lines_that_outrun_the_scroll_event(
    fake_stack: FakeStack, browser: Browser
) -> None:
    """The page scrolls a following box to the newest line; the scroll event fires a frame
    later, when more lines may have come (a busy or backgrounded page). That event is the
    page's own, not the reader's: the box keeps following and ends at the newest line."""
    page = await running_with_lines(browser, fake_stack, 40)
    await page.evaluate(
        """async () => {
            const page = document.querySelector('[sse-connect]');
            const src = page['htmx-internal-data'].sseEventSource;
            const line = document.querySelector('#log-acquisition').lastElementChild.outerHTML;
            let k = 0;
            const batch = () => {
                let html = '';
                for (let i = 0; i < 20; i++) {
                    k++;
                    html += line.replace(/id="[^"]*"/, `id="l-race-${k}"`)
                        .replace(/(<span class="txt">)[^<]*/, `$1race ${k}`);
                }
                src.dispatchEvent(new MessageEvent('log-acquisition', {data: html}));
            };
            const frame = () => new Promise(r => requestAnimationFrame(r));
            for (let f = 0; f < 10; f++) {
                batch();        // the next frame scrolls the box to its newest line ...
                await frame();  // ... (that frame's callbacks: the page's scroll, then this)
                batch();        // ... and these lines come before that scroll's event
            }
        }"""
    )
    await expect(page.locator("#log-acquisition li")).to_have_count(441)
    follow = page.locator(".logpanel[data-panel=acquisition] .follow")
    await expect(follow).to_have_attribute("aria-pressed", "true")
    box = page.locator(".logpanel[data-panel=acquisition] .log-scroll")
    at_bottom = "b => b.scrollHeight - b.scrollTop - b.clientHeight < 24"
    await page.wait_for_function(at_bottom, arg=await box.element_handle())


async def test_leaving_a_live_page_logs_no_error(fake_stack: FakeStack, browser: Browser) -> None:
    page = await open_session(browser, fake_stack, "operator")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.get_by_role("link", name="Facility", exact=True).click()
    await page.wait_for_url(f"{fake_stack.url}/")
    await stream_open(page)
    assert errors == []
    await page.go_back()  # live again, whether or not it came from the back-forward cache
    await page.wait_for_url(f"{fake_stack.url}/sessions/{fake_stack.session.id}")
    await stream_open(page)
    await fake_stack.fake.log(fake_stack.session, "acquisition", "back again")
    await expect(page.locator("#log-acquisition")).to_contain_text("back again")


async def test_level_filter_hides_info(fake_stack: FakeStack, browser: Browser) -> None:
    stack = fake_stack
    page = await open_session(browser, stack, "viewer")
    await stack.fake.log(stack.session, "processing", "fine")
    await stack.fake.log(stack.session, "processing", "CTF fit failed", "error")
    await expect(page.locator("#log-processing li")).to_have_count(2)
    await page.locator(".logpanel[data-panel=processing] select").select_option("warning")
    await expect(page.locator("#log-processing li:visible")).to_have_count(1)


async def test_dashboard_card_goes_live(fake_stack: FakeStack, browser: Browser) -> None:
    page = await new_page(browser)
    await login(page, fake_stack.url, "operator")
    await stream_open(page)
    card = page.locator("#scope-krios-1")
    await expect(card.locator(".badge")).to_have_text("idle")
    other = await page.context.new_page()
    await other.goto(f"{fake_stack.url}/sessions/{fake_stack.session.id}")
    await other.get_by_role("button", name="Start", exact=True).click()
    await expect(card.locator(".badge")).to_have_text("running")
    await expect(card).to_contain_text("scope-pc · PID 4242")


async def test_prompt_screenshot_as_staff(fake_stack: FakeStack, browser: Browser) -> None:
    """docs/screenshots/session-prompt-staff.png: the prompt open, as staff sees it."""
    stack = fake_stack
    page = await open_session(browser, stack, "staff")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#run-state")).to_have_text("running")
    lines = [
        ("acquisition", "info", "grid grid-1 loaded (position 1)"),
        ("processing", "info", "atlas_01.mrc: 612 squares (402 good) in 0.41 s"),
        ("acquisition", "info", "612 squares found on grid grid-1; queued the best 3"),
        ("processing", "warning", "exposure 7: CTF fit low confidence (cc 0.08)"),
        ("acquisition", "info", "exposure 8 on hole 6b5c6c → movie_00008.mrc"),
        ("processing", "error", "exposure 9: truncated movie (12 of 40 frames)"),
        ("acquisition", "info", "grid grid-1: queue is empty; waiting for a decision"),
    ]
    for panel, level, text in lines:
        await stack.fake.log(stack.session, panel, text, level)  # type: ignore[arg-type]
    await page.locator("#pause-toggle").click()
    await expect(page.locator("#pause-toggle")).to_have_attribute("aria-checked", "true")
    await stack.fake.ask_decision(stack.session)
    prompt = page.get_by_role("alertdialog")
    await prompt.get_by_role("button", name="Continue current grid").click()
    await expect(prompt.locator(".reprompt")).to_be_visible()
    await page.screenshot(path=str(SCREENSHOTS / "session-prompt-staff.png"), full_page=True)


async def test_screenshots(fake_stack: FakeStack, browser: Browser) -> None:
    """docs/screenshots: the session page running, the browser, the list, the dashboard."""
    stack, fake = fake_stack, fake_stack.fake
    page = await open_session(browser, stack, "operator")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#run-state")).to_have_text("running")
    squares = [t for t in stack.session.targets.values() if t["kind"] == "square"][:3]
    holes = [t for t in stack.session.targets.values() if t["kind"] == "hole"][:4]
    for t in squares[:1]:
        t["status"] = "done"
    for t in holes[:2]:
        t["status"] = "done"
    holes[2]["status"] = "acquiring"
    for t in [*squares[1:], holes[3]]:
        t["status"] = "queued"
    await fake.publish_queue(stack.session)
    for i in range(1, 9):
        await fake.log(
            stack.session, "acquisition", f"exposure {i} on hole {i:02d}a4 → movie_{i:05d}.mrc"
        )
        await fake.log(
            stack.session,
            "processing",
            f"exposure {i}: defocus -1.5{i} µm, CTF 3.{i} Å, ice 3{i} nm",
        )
    await fake.log(
        stack.session, "processing", "exposure 9: CTF fit low confidence (cc 0.07)", "warning"
    )
    await expect(page.locator("#log-processing li")).to_have_count(9)
    await expect(page.locator("#queue tbody tr")).to_have_count(4)
    await page.screenshot(path=str(SCREENSHOTS / "session-running.png"), full_page=True)
    await page.goto(f"{stack.url}/sessions/{stack.session.id}/browse")
    await expect(page.locator("#square svg")).to_be_visible()
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(SCREENSHOTS / "session-browser.png"), full_page=True)
    await page.goto(f"{stack.url}/sessions")
    await page.screenshot(path=str(SCREENSHOTS / "sessions.png"), full_page=True)
    await page.goto(f"{stack.url}/")
    await stream_open(page)
    await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    wall = await new_page(browser, WALL)
    await login(wall, stack.url, "viewer", f"/sessions/{stack.session.id}")
    await stream_open(wall)
    await wall.screenshot(path=str(SCREENSHOTS / "session-wall.png"), full_page=True)


async def set_visibility(page: Page, state: str) -> None:
    """As when the reader switches tabs (headless pages are always visible)."""
    await page.evaluate(
        """(state) => {
            const as = (get) => ({configurable: true, get});
            Object.defineProperty(document, 'visibilityState', as(() => state));
            Object.defineProperty(document, 'hidden', as(() => state === 'hidden'));
            document.dispatchEvent(new Event('visibilitychange'));
        }""",
        state,
    )


PARKED = "document.documentElement.dataset.stream === 'parked'"


async def test_a_hidden_page_parks_its_stream_and_catches_up_when_shown(
    fake_stack: FakeStack, browser: Browser
) -> None:
    stack, fake = fake_stack, fake_stack.fake
    page = await open_session(browser, stack, "operator")
    live = page.locator("#live")
    await expect(live).to_have_text("Live")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#run-state")).to_have_text("running")
    await set_visibility(page, "hidden")
    await page.wait_for_function(PARKED, timeout=15_000)
    await expect(live).to_have_text("Paused while hidden")
    closed = "() => document.querySelector('[sse-connect]')['htmx-internal-data']"
    assert await page.evaluate(closed + ".sseEventSource.readyState") == 2  # CLOSED
    await fake.log(stack.session, "acquisition", "said while the page was hidden")
    await fake.set_state(stack.session, RunState.ENDED, ExitReason.STOPPED)
    await set_visibility(page, "visible")
    await stream_open(page)
    await expect(live).to_have_text("Live")
    await expect(page.locator("#log-acquisition")).to_contain_text("said while the page was hidden")
    await expect(page.locator("#exit-reason")).to_have_text("stopped")


async def test_hidden_pages_free_their_connections_for_a_seventh(
    fake_stack: FakeStack, browser: Browser
) -> None:
    """Chromium opens 6 connections per server and profile, and each open stream holds one:
    a seventh page of the same browser never loaded while six live pages were open."""
    stack = fake_stack
    first = await open_session(browser, stack, "operator")
    pages = [first]
    for _ in range(5):
        page = await first.context.new_page()
        await page.goto(f"{stack.url}/sessions/{stack.session.id}")
        await stream_open(page)
        pages.append(page)
    seventh = await first.context.new_page()
    with pytest.raises(PlaywrightTimeout):
        await seventh.goto(f"{stack.url}/sessions", timeout=2_000)
    for page in pages[1:]:
        await set_visibility(page, "hidden")
    for page in pages[1:]:
        await page.wait_for_function(PARKED, timeout=15_000)
    await seventh.goto(f"{stack.url}/sessions/{stack.other.id}")
    await stream_open(seventh)
    await expect(first.locator("#live")).to_have_text("Live")  # the shown one kept its stream


@pytest.mark.parametrize(
    ("status", "detail", "shown"),
    [
        (
            403,
            "Only operators and staff can do this; you are signed in as a viewer.",
            "Not allowed",
        ),
        (409, "run 1 is starting; stop it first", "Refused"),
        (422, [{"loc": ["body", "enabled"], "msg": "Input should be a valid boolean"}], "Refused"),
    ],
)
async def test_a_refusal_is_a_message_not_a_console_error(
    fake_stack: FakeStack, browser: Browser, status: int, detail: object, shown: str
) -> None:
    """htmx reported a refused control as an error ("Response Status Error Code 409 …"), and
    Chromium reports any 4xx answer as one ("Failed to load resource"): the page only shows
    the message."""
    page = await open_session(browser, fake_stack, "operator")
    errors = console_errors(page)
    fake_stack.fake.fail_next = (status, detail)
    fake_stack.fake.fail_only = "/pause-between-grids"  # not the stream's own reads
    await page.locator("#pause-toggle").click()
    message = page.locator("#messages .message")
    await expect(message).to_contain_text(f"{shown}:")
    expected = "enabled: Input should be a valid boolean" if status == 422 else str(detail)
    await expect(message).to_contain_text(expected)
    await message.get_by_role("button", name="Dismiss message").click()
    await expect(page.locator("#messages")).to_be_empty()
    assert errors == []


async def test_how_a_run_ended_goes_for_everyone_once_noted(
    fake_stack: FakeStack, browser: Browser
) -> None:
    """'Lease lost' belongs to its run: it says which run and when it ended, and once an
    operator has taken note it goes from every open page, and a later visitor never sees it."""
    stack, fake = fake_stack, fake_stack.fake
    page = await open_session(browser, stack, "operator")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator("#run-state")).to_have_text("running")
    viewer = await open_session(browser, stack, "viewer")
    await fake.set_state(stack.session, RunState.ENDED, ExitReason.LOST, detail="lease gone")
    for p in (page, viewer):
        notice = p.locator(".popup.ended-run")
        await expect(notice).to_contain_text("Lease lost")
        await expect(notice.locator(".popup-run")).to_contain_text("run 1, ended ")
    await expect(viewer.locator(".popup .ack")).to_have_count(0)  # a viewer hides it, locally
    errors = console_errors(page)
    await page.locator(".popup.ended-run").get_by_role("button", name="Acknowledge").click()
    for p in (page, viewer):
        await expect(p.locator("#popups")).not_to_contain_text("Lease lost")
    later = await open_session(browser, stack, "viewer")
    await expect(later.locator("#exit-reason")).to_have_text("lost")
    await expect(later.locator("#popups")).not_to_contain_text("Lease lost")
    assert errors == []
