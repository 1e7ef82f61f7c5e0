"""The fusion stage: every configured method explains itself, and stacking learns from the log's labels."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fusewatch.core.timeutil import NS_PER_HOUR
from streams.fusion_stage import METHODS, FusionStage
from streams.model_config import ModelConfig

MINUTE = 60 * 10**9


@pytest.mark.parametrize("method", ["fisher", "weighted", "noisy_or", "stacking", "early", "hybrid"])
def test_each_method_gives_contributions_that_sum_to_the_fused_score(method: str) -> None:
    stage = FusionStage(ModelConfig(fusion=method))
    rng = np.random.default_rng(0)
    for _ in range(300):
        channels = ("vibration", "camera", "logs", "early")
        x = {m: float(rng.uniform(0.0, 0.99999)) for m in channels if rng.random() < 0.8}
        shares = {"vibration": 0.7, "camera": 0.3} if "early" in x else {}
        result = stage.fuse(x, shares)
        assert 0.0 <= result.fused <= 1.0
        assert sum(result.contributions.values()) == pytest.approx(result.fused, abs=1e-12)
        assert set(result.contributions) <= {"vibration", "camera", "logs"}
        scores = stage.all_methods(x, shares)
        assert set(scores) == set(METHODS)
        expected = {"fisher": "late", "weighted": "late_weighted", "noisy_or": "late_noisy_or",
                    "stacking": "late_stacking", "early": "early", "hybrid": "hybrid"}[method]
        assert scores[expected] == pytest.approx(result.fused)


def test_missing_modalities_score_zero_alone_and_are_left_out_of_fusion() -> None:
    stage = FusionStage(ModelConfig())
    scores = stage.all_methods({"vibration": 0.999}, {})
    assert scores["camera"] == scores["logs"] == scores["early"] == 0.0
    assert scores["vibration"] == pytest.approx(0.3) == scores["late"]


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
