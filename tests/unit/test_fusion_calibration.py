"""Calibration makes scores comparable; fusion respects the presence mask and explains itself."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import QuantileCalibrator
from models.fusion import LateFusion, chi2_survival_even

MASK_ALL = {"vibration": True, "camera": True, "logs": True}


def test_calibrated_scores_are_uniform_under_normal_operation() -> None:
    rng = np.random.default_rng(0)
    calibrator = QuantileCalibrator(window=5000, min_samples=100)
    for value in rng.lognormal(size=5000):
        calibrator.learn_one(float(value))
    scores = np.array([calibrator.score_one(float(v)) for v in rng.lognormal(size=4000)])
    assert scores.min() > 0 and scores.max() < 1
    assert np.histogram(scores, bins=10, range=(0, 1))[0].min() > 300  # ~400 per decile
    assert abs(np.mean(scores > 0.99) - 0.01) < 0.006


def test_calibrator_window_slides() -> None:
    calibrator = QuantileCalibrator(window=100, min_samples=5)
    for value in range(1000):
        calibrator.learn_one(float(value))
    assert calibrator.n == 100
    assert calibrator.score_one(850.0) < 0.01  # old values have left the window
    assert not QuantileCalibrator(window=100, min_samples=5).warm


@pytest.mark.parametrize("method", ["fisher", "weighted", "noisy_or"])
def test_contributions_sum_to_the_fused_score(method: str) -> None:
    fusion = LateFusion(method, weights={"vibration": 2.0})  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    for _ in range(200):
        calibrated = dict(zip(MASK_ALL, rng.uniform(0.001, 0.9999, 3), strict=False))
        mask = dict(zip(MASK_ALL, rng.random(3) < 0.7, strict=False))
        result = fusion.fuse_one({m: c for m, c in calibrated.items() if mask[m]})
        assert 0.0 <= result.fused <= 1.0
        assert sum(result.contributions.values()) == pytest.approx(result.fused, abs=1e-12)
        assert set(result.contributions) == {m for m, present in mask.items() if present}
        assert (result.leading is None) == (not any(mask.values()))


def test_missing_modalities_are_left_out_not_zeroed() -> None:
    fusion = LateFusion("fisher")
    alone = fusion.fuse_one({"vibration": 0.999})
    with_normal_camera = fusion.fuse_one({"vibration": 0.999, "camera": 0.5})
    assert alone.probability == pytest.approx(0.999)  # one p-value of 0.001 stays 0.001
    assert alone.fused == pytest.approx(0.3)  # on the surprise scale: 3 decades of 10
    assert with_normal_camera.fused < alone.fused
    assert fusion.fuse_one({}).fused == 0.0


def test_fisher_fusion_is_calibrated_under_normal_operation() -> None:
    rng = np.random.default_rng(2)
    fusion = LateFusion("fisher")
    results = [fusion.fuse_one(dict(zip(MASK_ALL, rng.uniform(size=3), strict=False))) for _ in range(20000)]
    probability = np.array([r.probability for r in results])
    assert abs(np.mean(probability >= 0.99) - 0.01) < 0.003
    assert abs(np.mean(probability >= 0.5) - 0.5) < 0.02
    surprise = np.array([r.fused for r in results])
    assert abs(np.mean(surprise >= 0.2) - 0.01) < 0.003  # 0.2 on the surprise scale = 1 in 100


def test_two_moderate_modalities_beat_one() -> None:
    fusion = LateFusion("fisher")
    one = fusion.fuse_one({"vibration": 0.98, "camera": 0.5}).probability
    two = fusion.fuse_one({"vibration": 0.98, "camera": 0.98}).probability
    assert two > 0.99 > one


def test_chi2_survival_matches_known_values() -> None:
    assert chi2_survival_even(9.488, 4) == pytest.approx(0.05, abs=1e-3)
    assert chi2_survival_even(16.812, 6) == pytest.approx(0.01, abs=1e-3)
    with pytest.raises(ValueError):
        chi2_survival_even(1.0, 3)
    with pytest.raises(ValueError, match="unknown fusion method"):
        LateFusion("average")  # type: ignore[arg-type]


def test_the_tail_is_extrapolated_conservatively() -> None:
    rng = np.random.default_rng(5)
    calibrator = QuantileCalibrator(window=2880, min_samples=60)
    for value in rng.chisquare(3, size=2880):
        calibrator.learn_one(float(value))
    scores = np.array([calibrator.score_one(float(v)) for v in rng.chisquare(3, size=50000)])
    assert np.mean(scores > 0.999) < 0.002  # at most twice the nominal rate beyond the reference's resolution
    far = [1 - calibrator.score_one(x) for x in (20.0, 40.0, 80.0)]
    assert far[0] > far[1] > far[2] > 0  # ever smaller p-values further out, not stuck at 1 / window
    assert far[2] < 1e-6
