"""``gridpilot scope check`` against the stand-in SerialEM, as a facility runs it: it passes,
moves nothing unless asked, and fails clearly (exit 1) with SerialEM unreachable, external
control refused, a wrong path mapping, or SerialEM's module missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.fake_serialem import MODULE_PATH, SHARE_WINDOWS, FakeSerialEM
from support.system import fast_settings

GRIDPILOT = Path(sys.executable).parent / "gridpilot"


def check(
    tmp_path: Path, sem: FakeSerialEM, *flags: str, **paths: Any
) -> subprocess.CompletedProcess[str]:
    module = paths.pop("module_path", MODULE_PATH)
    toml = tmp_path / "microscopes.toml"
    toml.write_text(
        f"""
[[microscopes]]
id = "glacios-1"
name = "Glacios"
driver = "serialem"

[microscopes.serialem]
host = "127.0.0.1"
port = {sem.port}
timeout_s = 20
frames_timeout_s = 2
module_path = "{module}"

[microscopes.paths]
windows_path = '{paths.get("windows_path", SHARE_WINDOWS)}'
scope_path = "{paths.get("scope_path", sem.share)}"
"""
    )
    return subprocess.run(
        [str(GRIDPILOT), "scope", "check", "glacios-1", "--file", str(toml), *flags],
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture
def sem(tmp_path: Path) -> FakeSerialEM:
    return FakeSerialEM(tmp_path / "pc", fast_settings())


def test_the_check_passes_against_the_stand_in_and_moves_nothing(
    tmp_path: Path, sem: FakeSerialEM
) -> None:
    with sem:
        sem.scope.stage[:] = [100.0, -50.0, 3.0]
        done = check(tmp_path, sem)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        for words in (
            "SerialEM 4.2.1 at 127.0.0.1",
            "X 100.0 µm, Y -50.0 µm, Z 3.0 µm",
            "105000×, low dose on, in Record",
            "Falcon 4i (stand-in), 4096 × 4096 px",
            "12 slots: 1 'grid01'",
            "path mapping   X:\\gridpilot\\gridpilot-check-",
            "skip  stage move",
            "all checks passed",
        ):
            assert words in out, out
        assert not {"MoveStageTo", "LoadCartridge", "SetColumnOrGunValve"} & set(sem.scope.calls)
        assert not sem.external_control and not list(sem.share.iterdir())  # the probe is gone


def test_move_moves_the_stage_and_back(tmp_path: Path, sem: FakeSerialEM) -> None:
    with sem:
        done = check(tmp_path, sem, "--move")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "X 0.0 → 20.0 → 0.0 µm" in done.stdout
        assert sem.scope.calls.count("MoveStageTo") == 2 and sem.scope.stage[:2] == [0.0, 0.0]


def test_serialem_unreachable(tmp_path: Path) -> None:
    off = FakeSerialEM(tmp_path / "pc", fast_settings(), listen=False)
    done = check(tmp_path, off)
    assert done.returncode == 1
    assert "FAIL  connection     nothing answers at 127.0.0.1" in done.stdout
    assert "EnableExternalPython 1" in done.stdout and "some checks FAILED" in done.stdout


def test_external_control_refused(tmp_path: Path, sem: FakeSerialEM) -> None:
    with sem:
        sem.busy = True
        done = check(tmp_path, sem)
    assert done.returncode == 1
    assert "FAIL  connection" in done.stdout and "refused external control" in done.stdout
    assert "SerialEM is busy and not ready to run a script" in done.stdout


@pytest.mark.parametrize("wrong", ["scope_path", "windows_path"])
def test_a_wrong_path_mapping(tmp_path: Path, sem: FakeSerialEM, wrong: str) -> None:
    elsewhere = tmp_path / "not-the-share"
    elsewhere.mkdir()
    mapping = (
        {"scope_path": str(elsewhere)} if wrong == "scope_path" else {"windows_path": "Y:\\data"}
    )
    with sem:
        done = check(tmp_path, sem, **mapping)
    assert done.returncode == 1, done.stdout
    assert "FAIL  path mapping" in done.stdout
    # a wrong scope_path: SerialEM writes, nothing shows here; a wrong windows_path: SerialEM
    # cannot write there (that folder does not exist on its PC)
    said = "did not appear here within 2 s" if wrong == "scope_path" else "SerialEM cannot write"
    assert said in done.stdout, done.stdout
    assert "ok    stage" in done.stdout  # the rest was still checked


def test_serialems_module_missing(tmp_path: Path, sem: FakeSerialEM) -> None:
    with sem:
        done = check(tmp_path, sem, module_path=tmp_path)
    assert done.returncode == 1
    assert "FAIL  module" in done.stdout and "'serialem' cannot be imported" in done.stdout


def test_a_simulated_or_unknown_microscope_is_not_checked(tmp_path: Path) -> None:
    toml = tmp_path / "m.toml"
    toml.write_text('[[microscopes]]\nid = "sim-1"\nname = "Sim"\n')
    for name, says in (("sim-1", "uses the simulated driver"), ("nope", "no microscope 'nope'")):
        done = subprocess.run(
            [str(GRIDPILOT), "scope", "check", name, "--file", str(toml)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and says in done.stdout
