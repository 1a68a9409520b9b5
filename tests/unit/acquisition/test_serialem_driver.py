"""The SerialEM driver on the stand-in: targets land where the fake scope's ground truth says,
files come back through the path mapping, slots are checked, and every fault ends the way the
run needs (SerialEM's text kept; fatal when the connection or the data is gone)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import mrcfile
import pytest

from acquisition.driver import DriverError
from acquisition.serialem.connection import (
    ExternalControlRefused,
    SerialEMUnreachable,
    open_serialem,
)
from acquisition.serialem.scope import SerialEMMicroscope
from acquisition.waits import StopRequested
from proto.messages import GridSpec, KnownAtlas, Target
from support.fake_serialem import FakeSerialEM
from support.serialem_scope import driver, grid, target
from support.system import fast_settings

DOCS = Path(__file__).parents[3] / "docs" / "microscopes.md"
SOURCES = (
    Path(__file__).parents[3] / "services" / "acquisition" / "src" / "acquisition" / "serialem"
)


def best_square(sem: FakeSerialEM) -> tuple[float, float, tuple[float, float]]:
    """A good square well inside the stage limit: (x, file row, its true stage position)."""
    image, truth = sem.scope.grid().atlas()
    for square in truth.squares:
        stage = sem.scope.grid().square_stage(square.centre)
        if square.cls == "good" and square.fully_visible and abs(stage[0]) + abs(stage[1]) < 600:
            row, col = square.centre
            return col, image.data.shape[0] - 1 - row, stage  # rows of the file, bottom up
    raise AssertionError("no good square")


async def screen_one_hole(
    scope: SerialEMMicroscope, sem: FakeSerialEM, tmp_path: Path, g: GridSpec
) -> tuple[Target, Path]:
    out = tmp_path / "data" / "krios-1" / "sess" / "run-1" / "grid01"
    await scope.load_grid(g)
    atlas = await scope.atlas(g, out)
    assert Path(atlas.path).is_relative_to(sem.share) and Path(atlas.preview_path or "").exists()
    x, row, truth = best_square(sem)
    square = target("square", g.grid_id, g.grid_id, x, row)
    await scope.move_stage(square)
    assert sem.scope.stage[:2] == pytest.approx(list(truth), abs=0.01)
    image = await scope.image_square(g, square, out)
    assert image.shape == (768, 768)
    return square, out


async def test_a_grid_through_the_driver_lands_on_the_truth(tmp_path: Path) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings()) as sem:
        scope = driver(sem, tmp_path / "data")
        await scope.connect()
        assert scope.connected and scope.version == 40201
        g = grid(3)
        square, out = await screen_one_hole(scope, sem, tmp_path, g)
        assert sem.scope.on_stage == 3 and sem.scope.valves_open
        # a hole at the image centre is the square's own stage position: the matrix of the
        # square image, not a scale of ours
        hole = target("hole", g.grid_id, square.target_id, 383.5, 383.5)
        before = list(sem.scope.stage[:2])
        await scope.move_stage(hole)
        assert sem.scope.stage[:2] == pytest.approx(before, abs=0.01)
        movie = await scope.expose(g, hole, out)
        assert movie.path.is_relative_to(sem.share / "krios-1" / "sess" / "run-1" / "grid01")
        with mrcfile.open(movie.path, header_only=True) as mrc:
            assert (int(mrc.header.nz), int(mrc.header.ny)) == (movie.n_frames, 256)
        (volume,) = scope.volumes()
        assert volume.path == str(sem.share) and volume.total_bytes > 0
        await scope.disconnect()
        assert not sem.external_control and not sem.scope.valves_open
        assert sem.scope.calls[-2:] == ["SetColumnOrGunValve", "Exit"] and not sem.failures


@pytest.mark.parametrize("version", [30900, 40300])
async def test_older_and_newer_serialem(tmp_path: Path, version: int) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings(), version=version) as sem:
        scope = driver(sem, tmp_path / "data")
        await scope.connect()
        assert scope.version == version
        g = grid(2)
        square, out = await screen_one_hole(scope, sem, tmp_path, g)
        movie = await scope.expose(g, target("hole", g.grid_id, square.target_id, 300, 300), out)
        assert movie.path.exists()
        # a restarted run on the same grid: the slot reads empty, the grid is on the stage
        again = driver(sem, tmp_path / "data")
        await scope.disconnect()
        await again.connect()
        await again.load_grid(g)
        assert sem.scope.calls.count("LoadCartridge") == 1
        assert ("ReportLoadedSlot" in sem.scope.calls) == (version >= 40300)
        await again.disconnect()


async def test_slot_checks(tmp_path: Path) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings(), version=40300) as sem:
        sem.scope.occupied.discard(4)
        scope = driver(sem, tmp_path / "data")
        await scope.connect()
        with pytest.raises(DriverError, match="slot 4 \\('grid04'\\) is empty"):
            await scope.load_grid(grid(4))
        with pytest.raises(DriverError, match="autoloader of Krios 1 has 12 slots"):
            await scope.load_grid(grid(13))
        assert "LoadCartridge" not in sem.scope.calls and scope.connected
        await scope.disconnect()


async def test_stage_limit_and_serialem_errors_fail_the_target_only(tmp_path: Path) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings()) as sem:
        scope = driver(sem, tmp_path / "data")
        await scope.connect()
        g = grid()
        square, out = await screen_one_hole(scope, sem, tmp_path, g)
        moves = sem.scope.calls.count("MoveStageTo")
        far = target("hole", g.grid_id, square.target_id, -40_000, 300)
        with pytest.raises(DriverError, match="beyond the limit of 975 µm") as caught:
            await scope.move_stage(far)
        assert not caught.value.fatal and sem.scope.calls.count("MoveStageTo") == moves
        sem.error_on["MoveStageTo"] = "Stage is not ready (the stand-in's message)"
        with pytest.raises(DriverError, match="the stand-in's message") as caught:
            await scope.move_stage(target("hole", g.grid_id, square.target_id, 300, 300))
        assert not caught.value.fatal and scope.connected
        await scope.disconnect()


async def test_a_hung_command_times_out_and_lets_serialem_go(tmp_path: Path) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings()) as sem:
        scope = driver(sem, tmp_path / "data", timeout_s=1)
        await scope.connect()
        sem.hang_on.add("ReportSlotStatus")
        with pytest.raises(DriverError, match="did not answer ReportSlotStatus within 1 s") as c:
            await scope.load_grid(grid())
        assert c.value.fatal and not scope.connected
        await scope.disconnect()  # quick: it does not talk to a broken connection
        assert await asyncio.to_thread(sem.hung.wait, 10)


async def test_serialem_vanishing_mid_run_is_fatal(tmp_path: Path) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings()) as sem:
        scope = driver(sem, tmp_path / "data")
        await scope.connect()
        g = grid()
        square, out = await screen_one_hole(scope, sem, tmp_path, g)
        sem.drop_on.add("Record")
        with pytest.raises(DriverError, match="lost SerialEM at 127.0.0.1") as caught:
            await scope.expose(g, target("hole", g.grid_id, square.target_id, 300, 300), out)
        assert caught.value.fatal and not scope.connected and sem.dropped.is_set()
        await scope.disconnect()


async def test_frames_that_never_reach_the_share_are_fatal(tmp_path: Path) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings()) as sem:
        scope = driver(sem, tmp_path / "data", frames_timeout_s=0.5)
        await scope.connect()
        g = grid()
        square, out = await screen_one_hole(scope, sem, tmp_path, g)
        sem.scope.frames_vanish = True
        with pytest.raises(DriverError, match="did not appear on the share") as caught:
            await scope.expose(g, target("hole", g.grid_id, square.target_id, 300, 300), out)
        assert caught.value.fatal and "X:\\gridpilot\\krios-1" in str(caught.value)
        await scope.disconnect()


async def test_a_stop_is_honoured_before_the_exposure_never_inside(tmp_path: Path) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings()) as sem:
        scope = driver(sem, tmp_path / "data")
        await scope.connect()
        g = grid()
        square, out = await screen_one_hole(scope, sem, tmp_path, g)

        def stop() -> None:
            raise StopRequested()

        scope.checkpoint = stop
        with pytest.raises(StopRequested):
            await scope.expose(g, target("hole", g.grid_id, square.target_id, 300, 300), out)
        assert "Record" not in sem.scope.calls
        await scope.disconnect()


async def test_connect_failures_say_what_to_do(tmp_path: Path) -> None:
    off = FakeSerialEM(tmp_path / "off", fast_settings(), listen=False)
    with pytest.raises(SerialEMUnreachable, match="EnableExternalPython 1") as caught:
        await driver(off, tmp_path / "data").connect()
    assert caught.value.fatal
    with FakeSerialEM(tmp_path / "busy", fast_settings()) as sem:
        sem.busy = True
        with pytest.raises(ExternalControlRefused, match="busy and not ready"):
            await open_serialem(driver(sem, tmp_path / "data").conn)  # no grace: at once
    # the real module is not installed here, and this folder does not hold one
    missing = driver(off, tmp_path / "data", module_path=str(tmp_path))
    with pytest.raises(DriverError, match="'serialem' cannot be imported") as caught:
        await missing.connect()
    assert caught.value.fatal and "\n" not in str(caught.value)


async def test_a_restarted_run_moves_on_an_earlier_runs_images(tmp_path: Path) -> None:
    with FakeSerialEM(tmp_path / "pc", fast_settings()) as sem:
        first = driver(sem, tmp_path / "data")
        await first.connect()
        g = grid()
        out = tmp_path / "data" / "krios-1" / "sess" / "run-1" / "grid01"
        await first.load_grid(g)
        atlas = await first.atlas(g, out)
        x, row, truth = best_square(sem)
        square = target("square", g.grid_id, g.grid_id, x, row)
        await first.move_stage(square)
        await first.image_square(g, square, out)
        hole = target("hole", g.grid_id, square.target_id, 200, 250)
        await first.move_stage(hole)
        hole_stage = list(sem.scope.stage[:2])
        await first.disconnect()

        second = driver(sem, tmp_path / "data")  # a new run process knows nothing
        await second.connect()
        known = KnownAtlas(atlas_id=g.grid_id, image=atlas, squares=(square,))
        await second.load_grid(g.model_copy(update={"atlas": known}))
        await second.move_stage(square)
        assert sem.scope.stage[:2] == pytest.approx(list(truth), abs=0.01)
        await second.move_stage(hole)
        assert sem.scope.stage[:2] == pytest.approx(hole_stage, abs=0.01)
        await second.disconnect()


def documented_commands() -> set[str]:
    """The commands docs/microscopes.md lists (the first column of its commands table)."""
    table = DOCS.read_text().split("## The SerialEM commands the driver uses")[1]
    rows = re.findall(r"^\| `([A-Za-z]+)` \|", table.split("\n## ")[0], flags=re.M)
    return set(rows)


def test_every_command_the_driver_sends_is_documented_and_stood_in() -> None:
    from support.fake_serialem import MODULE_PATH

    source = "\n".join(p.read_text() for p in SOURCES.glob("*.py"))
    sent = set(re.findall(r'(?:sem|call)\(\s*"([A-Za-z]+)"', source))
    sent |= {"View", "Focus", "Trial", "Record", "Search", "Exit"}  # by area name; letting go
    stand_in = (MODULE_PATH / "serialem.py").read_text()
    stood_in = set(re.findall(r'^    "([A-Za-z]+)": "[SsIiDd]*",', stand_in, flags=re.M))
    assert sent - {"ConnectToSEM"} <= stood_in, "the stand-in lacks a command the driver uses"
    assert stood_in <= sent, "the stand-in has a command the driver does not use"
    assert documented_commands() == sent, "docs/microscopes.md must list every command"
