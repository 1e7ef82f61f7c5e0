"""The detection sweep: each fault's outcome and why a miss was missed, the aggregate, seeds, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusewatch.cli import main
from fusewatch.config import FusewatchConfig
from fusewatch.core.errors import ConfigError
from fusewatch.core.events import GroundTruth
from fusewatch.core.timeutil import NS_PER_HOUR, NS_PER_MIN
from fusewatch.evaluation.methods import WindowRecord
from fusewatch.scenarios.sweep import aggregate, format_report, parse_seeds, seed_outcomes, settings_key

H = NS_PER_HOUR


def _truth(asset_id: str, fault_type: str, first: str) -> GroundTruth:
    return GroundTruth(asset_id=asset_id, asset_kind="pump", fault_type=fault_type,  # type: ignore[arg-type]
                       onset_at=10 * H, failure_at=40 * H, restart_at=46 * H, first_modality=first)  # type: ignore[arg-type]


def test_each_fault_is_found_with_its_lead_or_missed_with_the_reason() -> None:
    """pump-01's vibration is far beyond its history from hour 20 to the failure at hour 40: found once 3 of 5
    windows are high, 19.7 h ahead; pump-02's camera never goes beyond 0.999 calibrated, which Fisher puts below
    the threshold: missed, and the reason names the fused peak, the threshold and the camera. pump-03, healthy,
    has two hours of a camera far beyond its history: one false alarm, listed with the camera as its cause."""
    records = []
    for minute in range(0, 60 * 60, 10):
        end = minute * NS_PER_MIN
        strong = 1.0 - 1e-8 if 20 * H <= end <= 40 * H else 0.5
        weak = 0.999 if 20 * H <= end <= 40 * H else 0.5
        burst = 1.0 - 1e-8 if 30 * H <= end <= 32 * H else 0.5
        records += [WindowRecord("pump-01", end, end < 5 * H, {"vibration": strong}, {}, ()),
                    WindowRecord("pump-02", end, end < 5 * H, {"camera": weak, "vibration": 0.5}, {}, ()),
                    WindowRecord("pump-03", end, end < 5 * H, {"camera": burst, "vibration": 0.5}, {}, ())]
    healthy = GroundTruth(asset_id="pump-03", asset_kind="pump", fault_type=None, onset_at=None, failure_at=None,
                          restart_at=None, first_modality=None)
    truths = [_truth("pump-01", "bearing_outer", "vibration"), _truth("pump-02", "leak", "camera"), healthy]
    config = FusewatchConfig()
    document = seed_outcomes(records, truths, config, "fisher", start_ns=0)
    found, missed = document["faults"]
    assert (found["asset_id"], found["found"], found["onset_hours"], found["duration_hours"]) == ("pump-01", True, 10.0,
                                                                                                 30.0)
    assert found["lead_time_hours"] == pytest.approx(19.667, abs=1e-3) and "why" not in found  # 3 of 5 windows
    assert found["peak_decades"] == {"vibration": 8.0} and found["peak_fused"] >= 0.45
    assert missed["found"] is False and missed["lead_time_hours"] is None
    assert missed["why"].startswith("the fused score peaked at 0.") and "below the 0.45 to open" in missed["why"]
    assert missed["why"].endswith("camera came closest (3.0 decades at its peak)")
    assert document["false_alarms"] == {"pump-01": 0, "pump-02": 0, "pump-03": 1}
    assert document["false_alarm_list"] == [{"asset_id": "pump-03", "at_hours": 30.33, "when": "on a healthy asset",
                                             "channel": "camera 8.0"}]
    assert 3 * 54.8 <= document["asset_days"] * 24 <= 3 * 55.0  # hours 5 to 59.8 of each asset, out of warm-up
    report = aggregate([{**document, "seed": 4, "assets": 3}])
    assert (report["found"], report["faults"], report["false_alarms"]) == (1, 2, 1)
    assert [(g["fault_type"], g["first_modality"], g["found"]) for g in report["groups"]] == [
        ("bearing_outer", "vibration", 1), ("leak", "camera", 0)]
    assert [(m["seed"], m["asset_id"]) for m in report["misses"]] == [(4, "pump-02")]
    text = format_report(report, "two pumps")
    assert "faults found before failure: 1/2 (50.0 %)" in text
    assert "| 4 | pump-02 | leak | camera | 10.0 | 30.0 | the fused score peaked at" in text
    assert "| 4 | pump-03 | 30.33 | on a healthy asset | camera 8.0 |" in text


def test_seeds_are_ranges_and_lists_and_anything_else_is_refused() -> None:
    assert parse_seeds("0-3, 9,2") == [0, 1, 2, 3, 9]
    for text in ("", "a-b", "3-", "-2"):
        with pytest.raises(ConfigError, match="expected seeds such as 0-19"):
            parse_seeds(text)


def test_the_settings_fingerprint_changes_with_what_a_seed_depends_on() -> None:
    config = FusewatchConfig()
    key = settings_key(config, 8, 21.0, "fisher", "simulated")
    assert key == settings_key(FusewatchConfig(), 8, 21.0, "fisher", "simulated")
    other_alerts = config.model_copy(update={"alerts": config.alerts.model_copy(update={"open_threshold": 0.5})})
    assert len({key, settings_key(config, 8, 21.0, "hybrid", "simulated"), settings_key(config, 8, 14.0, "fisher",
                "simulated"), settings_key(config, 8, 21.0, "fisher", "new-assets"),
                settings_key(other_alerts, 8, 21.0, "fisher", "simulated")}) == 5


@pytest.mark.slow
def test_the_sweep_command_scores_each_seed_once_and_resumes(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Two seeds of a small new-machine fleet through ``fusewatch sweep``; run again, nothing is scored again and
    the report is the same; a seed document of other settings is made again, from the kept scored windows; another
    method replays those windows too."""
    kept = tmp_path / "records"
    command = ["sweep", "--seeds", "3,4", "--assets", "2", "--days", "2.5", "--fleet", "new-assets", "--out",
               str(tmp_path), "--no-progress", "--records", str(kept)]

    def sweep(*args: str) -> str:
        status = main(list(args))
        out, err = capsys.readouterr()
        assert status == 0, err
        return out

    sweep(*command)
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert report["seeds"] == [3, 4] and report["assets"] == 4 and report["faults"] >= 2
    assert report["found"] + len(report["misses"]) == report["faults"]
    # the new machines' faults start in their first day, inside the two-day warm-up of the default models
    assert report["misses"] and all(miss["why"] for miss in report["misses"])
    assert any("warm-up" in miss["why"] for miss in report["misses"])
    assert (tmp_path / "report.md").read_text().startswith("# Detection sweep: new-assets fleet, 2 seeds x 2 assets")
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
    records = sorted(path.name for path in kept.iterdir())
    assert [name.split("-")[:2] for name in records] == [["seed", "3"], ["seed", "4"]]
    seed_file = tmp_path / "seeds" / "seed-4.json"
    document = json.loads(seed_file.read_text())
    assert sweep(*command).count("kept from an earlier run") == 2
    assert json.loads((tmp_path / "sweep.json").read_text()) == report
    seed_file.write_text(json.dumps({**document, "settings": "another"}))
    third = sweep(*command[:2], "4", *command[3:])
    assert "kept from an earlier run" not in third and json.loads(seed_file.read_text()) == {
        **document, "wall_seconds": json.loads(seed_file.read_text())["wall_seconds"]}
    assert sorted(path.name for path in kept.iterdir()) == records  # read, not written again
    other = sweep(*command, "--method", "noisy_or")
    assert "kept from an earlier run" not in other and "x 2.5 days, noisy_or" in other
    assert sorted(path.name for path in kept.iterdir()) == records
    assert main([*command[:2], "x"]) == 2
    assert "--seeds 'x': expected seeds such as 0-19" in capsys.readouterr().err
