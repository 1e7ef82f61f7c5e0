"""One check suite over every online model (river-style): a new detector, calibrator or fuser is checked the
moment it is listed in ``CASES`` (a late fuser: the moment it is registered in ``models/fusion/registry.py``).

Each case gives a seeded factory, generators of normal and anomalous observations, and how the model learns one
observation. Unsupervised models learn normal observations only; supervised ones (stacking, the log models)
learn both, with their labels.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from fusewatch.core.events import MODALITIES
from models.base import Detector, Fuser
from models.calibration import ProbabilityCalibrator, QuantileCalibrator
from models.camera import CameraDetector
from models.early import EarlyFusionDetector
from models.fusion import FUSION_METHODS
from models.text import LogSeverityModel, WorkOrderClassifier
from models.vibration import VibrationDetector
from streams.model_config import ModelConfig


def _unsupervised(model: Any, x: Any, label: bool) -> None:
    model.learn_one(x)


def _labelled(model: Any, x: Any, label: bool) -> None:
    model.learn_one(x, label)


def _log_kind(model: Any, x: Any, label: bool) -> None:
    model.learn_one(x, "symptom" if label else "inspection")


def _order_category(model: Any, x: Any, label: bool) -> None:
    model.learn_one(x, "failure" if label else "routine")


@dataclass(frozen=True)
class Case:
    name: str
    factory: Callable[[int], Any]
    normal: Callable[[np.random.Generator], Any]
    anomaly: Callable[[np.random.Generator], Any]
    warm: int
    learn: Callable[[Any, Any, bool], None] = _unsupervised
    supervised: bool = False
    protocol: Any = Detector

    def __repr__(self) -> str:
        return self.name


def _features(rng: np.random.Generator, shift: float = 0.0) -> dict[str, float]:
    base = {"rms": 1.0, "kurtosis": 3.0, "env_bpfo": 0.3, "band_3": -2.0}
    return {k: v + 0.1 * float(rng.standard_normal()) + shift for k, v in base.items()}


def _early(rng: np.random.Generator, shift: float = 0.0) -> dict[str, float]:
    return {"vibration.kurtosis": 3.0 + 0.1 * float(rng.standard_normal()) + shift,
            "vibration.env_bpfo": 0.3 + 0.1 * float(rng.standard_normal()),
            "camera.error": -2.0 + 0.1 * float(rng.standard_normal()) + shift}


def _frame(rng: np.random.Generator, stain: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[0:128, 0:128]
    scene = 80 + 60 * ((xx // 32 + yy // 32) % 2) + rng.normal(0, 4, (128, 128))
    if stain:
        scene[70:110, 40:90] -= 70
    frame: np.ndarray = np.clip(scene, 0, 255).astype(np.uint8)
    return frame


def _calibrated(rng: np.random.Generator, anomalous: bool = False) -> dict[str, float]:
    """Calibrated scores of the present modalities: uniform when normal, one of them near 1 when anomalous."""
    present: list[str] = [m for m in MODALITIES if rng.random() < 0.8] or ["vibration"]
    x = {m: float(rng.uniform(0.0, 1.0)) for m in present}
    if anomalous:
        x[present[int(rng.integers(len(present)))]] = float(1.0 - 10 ** rng.uniform(-6, -3))
    return x


_ROUTINE = ("routine inspection all ok", "greased bearings, checked alignment", "weekly check, no leaks",
            "cleaned filter housing", "visual insp ok")
_SYMPTOM = ("brg v noisy at NDE", "oil leak under seal, puddle", "motor smells hot, hum", "grinding noise DE brg",
            "seal weeping, drip")


CASES = [
    Case("vibration", lambda seed: VibrationDetector(), _features, lambda rng: _features(rng, 1.0), warm=200),
    Case("camera", lambda seed: CameraDetector(seed=seed, warm_steps=20), _frame,
         lambda rng: _frame(rng, stain=True), warm=480),
    Case("early", lambda seed: EarlyFusionDetector(), _early, lambda rng: _early(rng, 1.0), warm=200),
    Case("quantile_calibrator", lambda seed: QuantileCalibrator(window=500, min_samples=10),
         lambda rng: float(rng.standard_normal()), lambda rng: float(rng.standard_normal() + 4.0), warm=300),
    Case("probability_calibrator", lambda seed: ProbabilityCalibrator(),
         lambda rng: float(rng.uniform(0, 0.3)), lambda rng: float(rng.uniform(0.7, 1.0)), warm=10),
    *(Case(method.name, lambda seed, build=method.fuser: build(ModelConfig()), _calibrated,  # type: ignore[misc]
           lambda rng: _calibrated(rng, anomalous=True), warm=300, learn=_labelled, supervised=True, protocol=Fuser)
      for method in FUSION_METHODS if method.fuser is not None),  # every registered late fuser
    Case("log_severity", lambda seed: LogSeverityModel(), lambda rng: _ROUTINE[int(rng.integers(5))],
         lambda rng: _SYMPTOM[int(rng.integers(5))], warm=60, learn=_log_kind, supervised=True),
    Case("work_order_classifier", lambda seed: WorkOrderClassifier(), lambda rng: _ROUTINE[int(rng.integers(5))],
         lambda rng: _SYMPTOM[int(rng.integers(5))], warm=60, learn=_order_category, supervised=True),
]
DICT_CASES = [case for case in CASES if isinstance(case.normal(np.random.default_rng(0)), dict)]


def _trained(case: Case, seed: int = 7) -> Any:
    model = case.factory(seed)
    rng = np.random.default_rng(seed)
    for _ in range(case.warm):
        case.learn(model, case.normal(rng), False)
        if case.supervised:
            case.learn(model, case.anomaly(rng), True)
    return model


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


def test_follows_the_protocol(case: Case) -> None:
    model: Any = case.factory(0)
    assert isinstance(model, case.protocol)
    rng = np.random.default_rng(0)
    assert case.learn(model, case.normal(rng), False) is None  # type: ignore[func-returns-value]
    assert isinstance(model.score_one(case.normal(rng)), float)


def test_pickle_round_trip_scores_and_learns_alike(case: Case) -> None:
    model = _trained(case)
    clone = pickle.loads(pickle.dumps(model))
    rng = np.random.default_rng(99)
    for i in range(40):
        x = case.anomaly(rng) if case.supervised and i % 2 else case.normal(rng)
        assert clone.score_one(x) == pytest.approx(model.score_one(x), rel=1e-6)
        case.learn(model, x, bool(i % 2))
        case.learn(clone, x, bool(i % 2))


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
    case.learn(model, x, True)
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


@pytest.mark.parametrize("case", DICT_CASES, ids=lambda case: case.name)
def test_features_may_appear_and_disappear(case: Case) -> None:
    model = _trained(case)
    rng = np.random.default_rng(2)
    for _ in range(30):
        x = dict(case.normal(rng))
        if len(x) > 1:
            del x[list(x)[int(rng.integers(len(x)))]]
        x["never_seen_before"] = 0.5
        assert np.isfinite(model.score_one(x))
        case.learn(model, x, False)
    assert np.isfinite(model.score_one({}))


def test_vibration_explains_by_the_most_deviant_features() -> None:
    model = _trained(CASES[0])
    assert [name for name, _ in model.explain(_features(np.random.default_rng(2), 3.0), top=2)]
