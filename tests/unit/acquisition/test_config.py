"""The microscope configuration file: the example validates, errors name the field, the older
flat JSON form still reads, and the path mapping maps both ways."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import pytest

from acquisition.config import (
    ConfigError,
    MicroscopeConfig,
    PathMapping,
    default_microscopes,
    load_microscopes,
)
from acquisition.service import build_scopes
from acquisition.settings import AcquisitionSettings

EXAMPLE = Path(__file__).parents[3] / "deploy" / "microscopes.example.toml"


def test_the_example_file_is_valid() -> None:
    scopes = load_microscopes(EXAMPLE)
    assert [s.id for s in scopes] == ["krios-sim", "glacios-1"]
    glacios = scopes[1]
    assert glacios.driver == "serialem" and glacios.optics.voltage_kv == 200
    assert glacios.detector.frame_format == "eer" and glacios.serialem is not None
    assert glacios.serialem.port == 48888


def test_the_file_named_by_the_environment_is_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scopes.toml"
    path.write_text(
        '[[microscopes]]\nid = "arctica-1"\nname = "Arctica"\n[microscopes.optics]\n'
        "voltage_kv = 200\n"
    )
    monkeypatch.setenv("ACQUISITION_MICROSCOPES_FILE", str(path))
    settings = AcquisitionSettings()
    assert [(s.id, s.optics.voltage_kv) for s in settings.microscopes] == [("arctica-1", 200)]
    # a run's child process gets what was read, not the file name (read once)
    child = AcquisitionSettings.model_validate_json(settings.model_dump_json())
    assert child.microscopes == settings.microscopes and child.microscopes_file is None


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('[[microscopes]]\nid = "Bad Id"\nname = "x"\n', "microscopes.0.id"),
        (
            '[[microscopes]]\nid = "a"\nname = "x"\n[microscopes.optics]\nvoltage_kv = -3\n',
            "microscopes.0.optics.voltage_kv",
        ),
        ('[[microscopes]]\nid = "a"\nname = "x"\ncolour = "red"\n', "microscopes.0.colour"),
        ('[[microscopes]]\nid = "a"\nname = "x"\ndriver = "serialem"\n', "needs [serialem]"),
        (
            '[[microscopes]]\nid = "a"\nname = "x"\n[[microscopes]]\nid = "a"\nname = "y"\n',
            "repeated: a",
        ),
        ("microscopes = [", "not valid TOML"),
        ("", "microscopes: Field required"),
    ],
)
def test_an_invalid_file_is_refused_naming_the_field(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "scopes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_microscopes(path)
    assert str(path) in str(caught.value) and names in str(caught.value)


def test_a_missing_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_microscopes(tmp_path / "absent.toml")


def test_the_older_flat_json_form_still_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    flat = {
        "id": "krios-up",
        "name": "K",
        "speed": 2000,
        "movie_px": 256,
        "pixel_size_a": 0.8,
        "faults": {"slow_file_s": 0.3},
    }
    monkeypatch.setenv("ACQUISITION_MICROSCOPES", json.dumps([flat]))
    (scope,) = AcquisitionSettings().microscopes
    assert scope.simulator.speed == 2000 and scope.simulator.movie_px == 256
    assert scope.simulator.faults.slow_file_s == 0.3 and scope.detector.pixel_size_a == 0.8


def test_the_demo_scopes_have_their_own_optics(tmp_path: Path) -> None:
    krios, glacios = default_microscopes()
    assert (krios.optics.voltage_kv, glacios.optics.voltage_kv) == (300, 200)
    scopes = build_scopes(AcquisitionSettings(data_root=tmp_path))
    assert scopes["glacios-1"].optics.voltage_kv == 200
    assert scopes["glacios-1"].detector == glacios.detector


def test_a_serialem_scope_gets_the_serialem_driver(tmp_path: Path) -> None:
    config = MicroscopeConfig.model_validate(
        {
            "id": "g",
            "name": "G",
            "driver": "serialem",
            "serialem": {"host": "scope-pc"},
            "paths": {"windows_path": "X:\\data", "scope_path": str(tmp_path)},
        }
    )
    scope = build_scopes(AcquisitionSettings(data_root=tmp_path, microscopes=[config]))["g"]
    assert scope.driver == "serialem" and not scope.connected  # nothing connects at start
    assert [v.path for v in scope.volumes()] == [str(tmp_path)]  # the share, seen from here


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ({"imaging": {"square": "Atlas"}}, "imaging.square"),
        ({"paths": {"critical_free_fraction": 0.5}}, "must not exceed"),
        ({"serialem": {"atlas_montage": [0]}}, "serialem.atlas_montage"),
    ],
)
def test_serialem_settings_are_checked(
    tmp_path: Path, table: dict[str, dict[str, object]], names: str
) -> None:
    data: dict[str, object] = {
        "id": "g",
        "name": "G",
        "driver": "serialem",
        "serialem": {"host": "scope-pc", **table.get("serialem", {})},
        "paths": {
            "windows_path": "X:\\data",
            "scope_path": str(tmp_path),
            **table.get("paths", {}),
        },
    }
    if "imaging" in table:
        data["imaging"] = table["imaging"]
    path = tmp_path / "scopes.toml"
    path.write_text(_toml({"microscopes": [data]}))
    with pytest.raises(ConfigError, match=re.escape(names)):
        load_microscopes(path)


def _toml(value: dict[str, object]) -> str:
    """A small TOML writer for the tables of these tests."""
    lines: list[str] = []
    for scope in value["microscopes"]:  # type: ignore[attr-defined]
        lines.append("[[microscopes]]")
        tables = {k: v for k, v in scope.items() if isinstance(v, dict)}
        lines += [f"{k} = {json.dumps(v)}" for k, v in scope.items() if k not in tables]
        for name, table in tables.items():
            lines.append(f"[microscopes.{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_the_path_mapping_maps_both_ways() -> None:
    mapping = PathMapping(windows_path="X:\\gridpilot", scope_path=Path("/data/g1"))
    local = mapping.to_local("X:\\gridpilot\\sess\\movie_001.tif")
    assert PurePosixPath(local) == PurePosixPath("/data/g1/sess/movie_001.tif")
    assert mapping.to_scope(local) == "X:\\gridpilot\\sess\\movie_001.tif"
    assert mapping.to_local("x:\\GRIDPILOT\\a.mrc").name == "a.mrc"  # Windows ignores case
    with pytest.raises(ValueError, match="not under"):
        mapping.to_local("D:\\elsewhere\\a.mrc")
    with pytest.raises(ValueError, match="not under"):
        mapping.to_scope(Path("/tmp/a.mrc"))
