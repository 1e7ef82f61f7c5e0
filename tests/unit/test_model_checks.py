"""One check suite over every online detector (river-style): a new detector is checked the moment it is listed.

Each case gives a factory (seeded) and a generator of normal and anomalous observations.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from models.base import Detector
from models.calibration import QuantileCalibrator
from models.camera import CameraDetector
from models.vibration import VibrationDetector


@dataclass(frozen=True)
class Case:
    name: str
    factory: Callable[[int], Any]
    normal: Callable[[np.random.Generator], Any]
    anomaly: Callable[[np.random.Generator], Any]
    warm: int


def _features(rng: np.random.Generator, shift: float = 0.0) -> dict[str, float]:
    base = {"rms": 1.0, "kurtosis": 3.0, "env_bpfo": 0.3, "band_3": -2.0}
    return {k: v + 0.1 * float(rng.standard_normal()) + shift for k, v in base.items()}


def _frame(rng: np.random.Generator, stain: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[0:128, 0:128]
    scene = 80 + 60 * ((xx // 32 + yy // 32) % 2) + rng.normal(0, 4, (128, 128))
    if stain:
        scene[70:110, 40:90] -= 70
    frame: np.ndarray = np.clip(scene, 0, 255).astype(np.uint8)
    return frame


CASES = [
    Case("vibration", lambda seed: VibrationDetector(), _features,
         lambda rng: _features(rng, 1.0), warm=200),
    Case("camera", lambda seed: CameraDetector(seed=seed, warm_steps=20), _frame,
         lambda rng: _frame(rng, stain=True), warm=480),
    Case("calibrator", lambda seed: QuantileCalibrator(window=500, min_samples=10),
         lambda rng: float(rng.standard_normal()), lambda rng: float(rng.standard_normal() + 4.0), warm=300),
]


def _trained(case: Case, seed: int = 7) -> Any:
    model = case.factory(seed)
    rng = np.random.default_rng(seed)
    for _ in range(case.warm):
        model.learn_one(case.normal(rng))
    return model


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


def test_follows_the_protocol(case: Case) -> None:
    model = case.factory(0)
    assert isinstance(model, Detector)
    assert model.learn_one(case.normal(np.random.default_rng(0))) is None  # type: ignore[func-returns-value]
    assert isinstance(model.score_one(case.normal(np.random.default_rng(1))), float)


def test_pickle_round_trip_scores_and_learns_alike(case: Case) -> None:
    model = _trained(case)
    clone = pickle.loads(pickle.dumps(model))
    rng = np.random.default_rng(99)
    for _ in range(40):
        x = case.normal(rng)
        assert clone.score_one(x) == pytest.approx(model.score_one(x), rel=1e-6)
        model.learn_one(x)
        clone.learn_one(x)


def test_same_seed_same_scores(case: Case) -> None:
    first, second = _trained(case, seed=3), _trained(case, seed=3)
    rng = np.random.default_rng(5)
    for _ in range(20):
        x = case.anomaly(rng)
        assert first.score_one(x) == second.score_one(x)


def test_inputs_are_not_mutated(case: Case) -> None:
    model = _trained(case)
    x = case.anomaly(np.random.default_rng(1))
    before = copy.deepcopy(x)
    model.score_one(x)
    model.learn_one(x)
    if isinstance(x, np.ndarray):
        np.testing.assert_array_equal(x, before)
    else:
        assert x == before


def test_anomalies_score_higher_than_normal(case: Case) -> None:
    model = _trained(case)
    rng = np.random.default_rng(11)
    normal = [model.score_one(case.normal(rng)) for _ in range(60)]
    anomalous = [model.score_one(case.anomaly(rng)) for _ in range(60)]
    pairs = [(a, n) for a in anomalous for n in normal]
    auc = np.mean([a > n for a, n in pairs]) + 0.5 * np.mean([a == n for a, n in pairs])
    assert auc >= 0.8, f"{case.name}: ROC AUC {auc:.2f}"


def test_vibration_features_may_appear_and_disappear() -> None:
    model = _trained(CASES[0])
    rng = np.random.default_rng(2)
    with_new = {**_features(rng), "env_bsf": 0.2}
    without = {k: v for k, v in _features(rng).items() if k != "kurtosis"}
    for x in (with_new, without, with_new):
        assert np.isfinite(model.score_one(x))
        model.learn_one(x)
    assert [name for name, _ in model.explain(_features(rng, 3.0), top=2)]
