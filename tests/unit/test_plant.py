"""The plant file: what it accepts, every problem with its line and key, the registry the worker reads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fusewatch.cli import main
from fusewatch.core.assets import AssetInfo, AssetRegistry, BearingKinematics
from fusewatch.core.errors import PlantFileError
from fusewatch.core.plant import load_plant, load_registry

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "plant.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plant.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[tuple[int, str, str]]:
    with pytest.raises(PlantFileError) as caught:
        load_plant(path)
    return [(p.line, p.key, p.reason) for p in caught.value.problems]


def test_the_example_plant_file_is_valid_and_gives_each_assets_bearing() -> None:
    plant = load_plant(EXAMPLE)
    registry = plant.registry()
    bearings = {asset: registry.bearings(asset) for asset in ("pump-01", "motor-02", "fan-03")}
    assert [a.id for a in plant.assets] == ["pump-01", "motor-02", "fan-03"]
    # geometry of a 6205 at 29.5 Hz: BPFO = n f/2 (1 - d/D)
    pump, motor, fan = bearings.values()
    assert pump is not None and motor is not None and fan is not None
    assert pump.bpfo_hz == pytest.approx(9 * 29.5 / 2 * (1 - 7.94 / 39.04))  # geometry
    assert motor.bpfi_hz == pytest.approx(5.415 * 24.7)  # multipliers
    assert fan.ftf_hz == 6.35  # frequencies in Hz
    assert plant.mqtt_topic("pump-01", "vibration") == "plant/pump-01/vibration"
    assert plant.mqtt_topic("motor-02", "vibration") is None  # OPC UA


def test_geometry_with_a_contact_angle_matches_the_textbook_formulas(tmp_path: Path) -> None:
    plant = load_plant(write(tmp_path, """
[[assets]]
id = "m"
kind = "motor"
bearing = { shaft_hz = 20.0, balls = 8, ball_diameter_mm = 10.0, pitch_diameter_mm = 50.0, contact_angle_deg = 15 }
"""))
    k = plant.registry().bearings("m")
    assert k is not None
    r = 10.0 / 50.0 * math.cos(math.radians(15))
    assert (k.bpfo_hz, k.bpfi_hz, k.ftf_hz) == pytest.approx((8 * 10 * (1 - r), 8 * 10 * (1 + r), 10 * (1 - r)))
    assert k.bsf_hz == pytest.approx(50.0 / 20.0 * 20.0 * (1 - r * r))


def test_every_problem_is_reported_with_its_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """[plant]
name = "x"

[mqtt]
url = "http://broker"

[[assets]]
id = "pump-01"
kind = "pump"
bearing = { shaft_hz = 29.5, balls = 9 }
vibration = { source = "opcua", node = "ns=2;s=x" }

[[assets]]
id = "pump-01"
kind = "pump"
colour = "red"

[assets.camera]
id = "cam"
source = "http"
url = "ftp://camera"
""")
    found = problems_of(path)
    assert found == [
        (5, "mqtt.url", "must look like mqtt://HOST:PORT or mqtts://HOST:PORT, got 'http://broker'"),
        (10, "assets[0].bearing", "the bearing's geometry lacks ball_diameter_mm, pitch_diameter_mm"),
        (11, "assets[0].vibration", "an OPC UA vibration stream needs sample_rate_hz or sample_rate_node (one)"),
        (14, "assets[1].id", "'pump-01' is listed already as assets[0]"),
        (16, "assets[1].colour", "unknown key"),
        (18, "assets[1].camera", "an http camera needs url, an http:// or https:// snapshot URL"),
    ]


def test_cross_checks_name_the_stream(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[assets]]
id = "a"
kind = "pump"
vibration = { source = "opcua", node = "ns=2;s=a", sample_rate_hz = 25600 }

[[assets]]
id = "b"
kind = "pump"
vibration = { source = "mqtt", topic = "plant/shared" }
logs = { source = "mqtt", topic = "plant/shared" }
""")
    assert problems_of(path) == [
        (5, "assets[0].vibration.source", "reads an OPC UA node, but there is no [opcua] table with the server's url"),
        (11, "assets[1].logs", "MQTT topic 'plant/shared' is b's vibration already"),
    ]


def test_toml_syntax_errors_and_missing_files_are_one_problem(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "[[assets]]\nid = \n"))[0][0] == 2
    assert "cannot read the file" in problems_of(tmp_path / "missing.toml")[0][2]


def test_a_password_is_read_from_its_environment_variable_or_file_when_used(tmp_path: Path, monkeypatch) -> None:
    secret = tmp_path / "cam.password"
    secret.write_text("s3cret\n")
    plant = load_plant(write(tmp_path, f"""
[[assets]]
id = "a"
kind = "pump"
[assets.camera]
id = "c1"
source = "http"
url = "http://127.0.0.1:1/x.jpg"
auth = "basic"
username = "u"
password_file = "{secret}"

[[assets]]
id = "b"
kind = "pump"
[assets.camera]
id = "c2"
source = "http"
url = "http://127.0.0.1:1/y.jpg"
auth = "digest"
username = "u"
password_env = "FW_TEST_CAMERA_PASSWORD"
"""))
    first, second = (asset.camera for asset in plant.assets)
    assert first is not None and second is not None
    assert first.password("assets[0].camera") == "s3cret"
    monkeypatch.delenv("FW_TEST_CAMERA_PASSWORD", raising=False)
    with pytest.raises(Exception, match="FW_TEST_CAMERA_PASSWORD is not set"):
        second.password("assets[1].camera")
    monkeypatch.setenv("FW_TEST_CAMERA_PASSWORD", "other")
    assert second.password("assets[1].camera") == "other"
    assert "s3cret" not in repr(plant) and "other" not in repr(plant)


def test_the_registry_is_read_from_a_plant_file_or_the_older_json(tmp_path: Path) -> None:
    registry = AssetRegistry({"pump-01": AssetInfo("pump", BearingKinematics(29.5, 105.2, 160.1, 68.3, 11.7)),
                              "cam-only": AssetInfo("conveyor", None)})
    registry.save(tmp_path / "assets.json")
    assert json.loads((tmp_path / "assets.json").read_text())["assets"]["cam-only"] == {"kind": "conveyor"}
    old = load_registry(tmp_path / "assets.json")
    assert old.bearings("pump-01") == registry.bearings("pump-01") and old.bearings("cam-only") is None
    new = load_registry(EXAMPLE)
    assert "fan-03" in new and "pump-02" not in new


def test_plant_check_prints_a_summary_or_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plant", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "3 assets" in out and "pump-01" in out and "mqtt plant/pump-01/vibration" in out
    assert "BPFO 105.8" in out
    bad = write(tmp_path, "[[assets]]\nid = 'a'\nkind = 'pump'\nbearing = { shaft_hz = 0, bpfo_hz = 1 }\n")
    assert main(["plant", "check", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{bad}:4: assets[0].bearing.shaft_hz: Input should be greater than 0")
    assert err[-1] == f"{bad}: 1 problem"


def test_plant_example_prints_a_valid_plant_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plant", "example"]) == 0
    path = write(tmp_path, capsys.readouterr().out)
    assert len(load_plant(path).assets) == 3
