"""Learned fusion: trained on some histories' scored windows, judged against Fisher on others, and written into a
bundle only when it wins (``fusewatch train --fusion-windows``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusewatch.cli import main
from fusewatch.config import FusewatchConfig
from fusewatch.core.timeutil import NS_PER_HOUR
from fusewatch.evaluation.methods import WindowRecord, replay_methods
from fusewatch.fusion_training import History, beats_fisher, held_out_rows, log_labels, train_gate
from fusewatch.scenarios.scoring import save_records
from models.bundle import load_bundle
from models.fusion.learned import FUSION_META, FUSION_TENSORS
from streams.fusion_stage import FusionStage, learned_gate
from streams.model_config import ModelConfig

WINDOW = 5 * 60 * 10**9  # five-minute windows keep the histories small
DAYS = 6


def history(seed: int, failing: bool = True) -> list[WindowRecord]:
    """Four assets over six days. pump-02's vibration is restless for hours at a time (an operating point its
    models never learned) though it never fails; when ``failing``, pump-01's camera and motor-03's vibration rise
    over the 30 h before a failure entry (day 4), and a repair follows 6 h later."""
    rng = np.random.default_rng(seed)
    records = []
    failure, repair = 96 * NS_PER_HOUR, 102 * NS_PER_HOUR
    kinds = {"pump-01": "pump", "pump-02": "pump", "motor-03": "motor", "motor-04": "motor"}
    for step in range(DAYS * 24 * NS_PER_HOUR // WINDOW):
        end = (step + 1) * WINDOW
        for asset, kind in kinds.items():
            p = rng.uniform(size=4)
            decades = -np.log10(p)
            if asset == "pump-02" and (end // (7 * NS_PER_HOUR)) % 3 == 2:
                decades[0] += 6.0  # vibration, restless a third of the time
            rising = failing and failure - 30 * NS_PER_HOUR <= end <= failure
            down = failing and failure < end <= repair
            if rising and asset in ("pump-01", "motor-03"):
                decades[1 if asset == "pump-01" else 0] += 8.0 * (end - failure + 30 * NS_PER_HOUR) / (30 * NS_PER_HOUR)
            logs: tuple[tuple[int, str], ...] = ()
            if failing and asset in ("pump-01", "motor-03") and end - WINDOW < failure <= end:
                logs = ((failure, "failure"),)
            if failing and asset in ("pump-01", "motor-03") and end - WINDOW < repair <= end:
                logs = ((repair, "repair"),)
            x = {} if down else {c: float(1 - 10 ** -min(d, 10)) for c, d in
                                 zip(("vibration", "camera", "logs", "early"), decades, strict=True)}
            records.append(WindowRecord(asset, end, end <= 12 * NS_PER_HOUR, x, {"vibration": 1.0}, logs, kind))
    return records


def labelled(records: list[WindowRecord]) -> History:
    return records, log_labels(records, int(48 * NS_PER_HOUR))


def test_the_gate_learns_to_distrust_a_restless_channel_and_beats_fisher_on_held_out_history() -> None:
    config = FusewatchConfig()
    gate = train_gate([labelled(history(seed)) for seed in (1, 2, 3)], ("motor", "pump"), config)
    assert gate.made_from["training_found"] == 6 and gate.made_from["training_false_alarms"] == 0
    rows = {row["method"]: row for row in held_out_rows([labelled(history(4)), labelled(history(5))], gate, config)}
    assert rows["fisher"]["false_alarms"] > 0  # pump-02's restless vibration, alone, reaches Fisher's threshold
    assert rows["learned"]["found"] == rows["fisher"]["found"] == 4
    assert rows["learned"]["false_alarms"] < rows["fisher"]["false_alarms"]
    assert beats_fisher(list(rows.values()))
    # the stage scores with it: the failing pump's camera leads, as the gate weighs it
    stage = FusionStage(ModelConfig(fusion="learned"), gate=gate)
    loud_camera = stage.fuse({"vibration": 0.5, "camera": 1 - 1e-8}, {}, stage.context("pump-01", 0, "pump"))
    assert loud_camera.leading == "camera" and loud_camera.fused > config.alerts.open_threshold
    series, _ = replay_methods(history(4), ModelConfig(), config.alerts, methods=("learned",), gate=gate)
    assert set(series["learned"].opened) == {"pump-01", "motor-03"}


@pytest.mark.slow
def test_train_writes_the_gate_into_a_bundle_only_when_it_beats_fisher(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    windows = tmp_path / "windows"
    for seed in (1, 2, 3, 4):
        save_records(history(seed), windows / f"seed-{seed}.records")
    out = tmp_path / "bundle"
    command = ["train", "--fusion-windows", str(windows), "--out", str(out), "--version", "f1"]
    status = main(command)
    done = capsys.readouterr()
    assert status == 0, done.err
    assert "training on 3 histories, 1 held out; kinds: motor, pump" in done.out
    assert "beats Fisher on the held-out histories: kept in the bundle" in done.out
    bundle = load_bundle(out)
    assert bundle.names == [FUSION_META, FUSION_TENSORS]
    origin = bundle.manifest["made_from"]["learned_fusion"]
    assert origin["kept"] and origin["held_out"] == ["seed-4.records"] and origin["labels"] == "logs"
    assert learned_gate(bundle) is not None
    # the bundle's gate is the configured method's, in replay as in a worker
    series, _ = replay_methods(history(5), ModelConfig(fusion="learned", bundle=out), FusewatchConfig().alerts,
                               methods=("learned",))
    assert set(series["learned"].opened) == {"pump-01", "motor-03"}

    quiet = tmp_path / "quiet"  # a held-out history without a fault or a restless channel: nothing to do better
    for seed in (1, 2, 3):
        save_records(history(seed), quiet / f"a-{seed}.records")
    save_records([r for r in history(9, failing=False) if r.asset_id != "pump-02"][:2000], quiet / "b-quiet.records")
    status = main([*command[:2], str(quiet), "--out", str(tmp_path / "none"), "--version", "f2"])
    refused = capsys.readouterr().out
    assert status == 1 and "left out of the bundle" in refused
    assert "no bundle written" in refused and not (tmp_path / "none").exists()
    table = refused[refused.index("held out:"):]
    assert all(method in table for method in ("fisher", "noisy_or", "hybrid", "learned"))

    for args, problem in (([], "give --source"), (["--fusion-windows", str(windows / "seed-1.records")],
                                                  "1 histories, 1 held out"),
                          (["--fusion-windows", str(tmp_path / "missing")], "no such file or directory")):
        status = main(["train", *args, "--out", str(tmp_path / "bad"), "--version", "x"])
        error = capsys.readouterr().err
        assert status == 2 and problem in error, error
    json.dumps(origin)  # the manifest's record of the comparison is plain JSON


@pytest.mark.parametrize("hold_out", [0, 4])
def test_the_hold_out_must_leave_histories_on_both_sides(tmp_path: Path, hold_out: int,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for seed in (1, 2, 3, 4):
        save_records(history(seed)[:10], tmp_path / f"seed-{seed}.records")
    status = main(["train", "--fusion-windows", str(tmp_path), "--fusion-hold-out", str(hold_out),
                   "--out", str(tmp_path / "b"), "--version", "x"])
    assert status == 2 and f"4 histories, {hold_out} held out" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
