"""The fusion stage: every configured method explains itself, and stacking learns from the log's labels."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import get_args

import numpy as np
import pydantic
import pytest

from fusewatch.core.errors import BundleError, ConfigError
from fusewatch.core.events import MODALITIES
from fusewatch.core.timeutil import NS_PER_HOUR
from models.bundle import load_bundle, write_bundle
from models.fusion import FUSION_METHODS, FusionName, GateParams, LateName, blend, fusion_names, late_names
from models.fusion.learned import CHANNELS, FUSION_META, FUSION_TENSORS
from streams.fusion_stage import METHODS, FusionStage
from streams.model_config import ModelConfig

MINUTE = 60 * 10**9


def toy_gate(kinds: tuple[str, ...] = ("pump",)) -> GateParams:
    """A gate that trusts the camera more on pumps and the logs more long after a repair (random elsewhere)."""
    n, inputs = len(CHANNELS), 2 * len(CHANNELS) + len(kinds) + 1
    weight = np.random.default_rng(1).normal(0, 0.3, (n, inputs))
    weight[CHANNELS.index("camera"), 2 * n] = 3.0  # the first kind
    weight[CHANNELS.index("logs"), -1] = 3.0  # hours since repair
    return GateParams(kinds, weight, np.zeros(n), np.ones(n), -1.0, np.array([-1.0, 0.0, 1.0]), np.array([0, 1.0, 4.5]))


CONFIGURATIONS = [{"fusion": name} for name in fusion_names()] + \
                 [{"fusion": "hybrid", "hybrid_late": name} for name in late_names() if name != "fisher"]


@pytest.mark.parametrize("settings", CONFIGURATIONS, ids=lambda settings: "-".join(settings.values()))
def test_each_method_gives_contributions_that_sum_to_the_fused_score(settings: dict[str, str]) -> None:
    stage = FusionStage(ModelConfig.model_validate(settings), gate=toy_gate())
    rng = np.random.default_rng(0)
    for _ in range(300):
        channels = ("vibration", "camera", "logs", "early")
        x = {m: float(rng.uniform(0.0, 0.99999)) for m in channels if rng.random() < 0.8}
        shares = {"vibration": 0.7, "camera": 0.3} if "early" in x else {}
        result = stage.fuse(x, shares, stage.context("pump-01", 0, "pump"))
        assert 0.0 <= result.fused <= 1.0
        assert sum(result.contributions.values()) == pytest.approx(result.fused, abs=1e-12)
        assert set(result.contributions) <= {"vibration", "camera", "logs"}
        scores = stage.all_methods(x, shares, context=stage.context("pump-01", 0, "pump"))
        assert list(scores) == list(METHODS) == list(stage.available())
        assert scores[settings["fusion"]] == result.fused


def test_the_learned_method_needs_a_gate_and_sees_the_asset_s_kind_and_hours_since_repair(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs a bundle with a learned fusion .* no \[models\] bundle is set"):
        FusionStage(ModelConfig(fusion="learned"))
    assert "learned" not in FusionStage(ModelConfig()).available()
    parts = toy_gate().parts()
    bundle = load_bundle(write_bundle(tmp_path / "b", "1", parts).path)
    stage = FusionStage(ModelConfig(fusion="learned", bundle=bundle.path), bundle)
    assert stage.available()[-1] == "learned"
    x = {"camera": 0.999, "logs": 0.999, "vibration": 0.5}
    for hour in range(0, 200):  # a pump, repaired at hour 100
        stage.observe("pump-01", hour * NS_PER_HOUR, x, [(100 * NS_PER_HOUR, "repair")] if hour == 100 else [])
    assert stage.context("pump-01", 199 * NS_PER_HOUR, "pump").hours_since_repair == 99.0
    assert stage.context("pump-02", 5 * NS_PER_HOUR, "pump").hours_since_repair == 0.0  # not seen yet
    pump = stage.fuse(x, {}, stage.context("pump-01", 199 * NS_PER_HOUR, "pump"))
    motor = stage.fuse(x, {}, stage.context("pump-01", 199 * NS_PER_HOUR, "motor"))
    assert pump.leading == "camera" and pump.fused != motor.fused
    clone = pickle.loads(pickle.dumps(stage))
    assert clone.fuse(x, {}, clone.context("pump-01", 199 * NS_PER_HOUR, "pump")) == pump
    old = {k: v for k, v in stage.__dict__.items() if k != "clock"}
    old["methods"] = {k: v for k, v in old["methods"].items() if k != "learned"}
    restored = FusionStage.__new__(FusionStage)
    restored.__setstate__(old)  # a checkpoint from before the learned method
    assert restored.clock.since == {} and "learned" in restored.methods
    broken = {FUSION_TENSORS: {**parts[FUSION_TENSORS], "weight": np.ones(3)}, FUSION_META: parts[FUSION_META]}
    with pytest.raises(BundleError, match="shapes do not fit 4 channels and 1 kinds"):
        FusionStage(ModelConfig(), load_bundle(write_bundle(tmp_path / "c", "1", broken).path))


def test_the_rows_are_the_modalities_then_every_registered_method() -> None:
    rows = (*MODALITIES, *(m.name for m in FUSION_METHODS))
    assert rows == METHODS
    assert set(get_args(FusionName)) == set(fusion_names()) and set(get_args(LateName)) == set(late_names())
    assert len(set(METHODS)) == len(METHODS)


@pytest.mark.parametrize(("key", "value"), [("fusion", "late"), ("fusion", "late_weighted"), ("hybrid_late", "early")])
def test_the_configuration_names_the_allowed_methods(key: str, value: str) -> None:
    allowed = fusion_names() if key == "fusion" else late_names()
    with pytest.raises(pydantic.ValidationError) as caught:
        ModelConfig.model_validate({key: value})
    assert all(repr(name) in str(caught.value) for name in allowed)


def test_missing_modalities_score_zero_alone_and_are_left_out_of_fusion() -> None:
    stage = FusionStage(ModelConfig())
    scores = stage.all_methods({"vibration": 0.999}, {})
    assert scores["camera"] == scores["logs"] == scores["early"] == 0.0
    assert scores["vibration"] == pytest.approx(0.3) == scores["fisher"]


def test_stacking_learns_which_modality_precedes_failures_from_the_log() -> None:
    """Asset A's camera is always surprising but it never fails; B's logs rise before each of its failures."""
    stage = FusionStage(ModelConfig(fusion="stacking", label_horizon_hours=2.0))
    before = stage.fuse({"logs": 0.999, "camera": 0.5}, {}).fused, stage.fuse({"camera": 0.999, "logs": 0.5}, {}).fused
    assert before[0] == pytest.approx(before[1])
    t = 0
    for _ in range(20):
        for minute in range(240):
            t += MINUTE
            rising = minute >= 120
            stage.observe("A", t, {"camera": 0.999, "logs": 0.5}, [])
            stage.observe("B", t, {"logs": 0.999 if rising else 0.5, "camera": 0.5},
                          [(t, "failure")] if minute == 239 else [])
    assert stage.labels_learned["positive"] >= 20 * 120
    logs_led = stage.fuse({"logs": 0.999, "camera": 0.5}, {}).fused
    camera_led = stage.fuse({"camera": 0.999, "logs": 0.5}, {}).fused
    assert logs_led > 0.5 > camera_led
    assert stage.stacking.weights["logs"] > stage.stacking.weights["camera"]
    clone = pickle.loads(pickle.dumps(stage))
    assert clone.fuse({"logs": 0.999}, {}).fused == stage.fuse({"logs": 0.999}, {}).fused
    assert stage.labeler.held <= 2 * (2 * NS_PER_HOUR // MINUTE + 2)  # bounded by the horizon per asset


def test_hybrid_blends_the_stage_s_own_late_method_as_it_learns_and_after_a_pickle() -> None:
    stage = FusionStage(ModelConfig(fusion="hybrid", hybrid_late="stacking", label_horizon_hours=1.0))
    for minute in range(180):
        stage.observe("A", (minute + 1) * MINUTE, {"logs": 0.999, "camera": 0.5},
                      [((minute + 1) * MINUTE, "failure")] if minute == 59 else [])
    assert stage.labels_learned["positive"] > 0 and stage.labels_learned["negative"] > 0
    x, shares = {"logs": 0.999, "early": 0.99}, {"logs": 1.0}
    for current in (stage, pickle.loads(pickle.dumps(stage))):
        early, late = current.methods["early"].fuse(x, shares), current.methods["stacking"].fuse(x, shares)
        assert current.fuse(x, shares) == blend(early, late, current.config.hybrid_early_weight)
        assert late.fused != FusionStage(ModelConfig(fusion="stacking")).fuse(x, shares).fused  # it has learned
