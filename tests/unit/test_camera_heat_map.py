"""The camera detector's heat map, and the optional settings the elpv scenario uses (defaults unchanged)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from models.camera import CameraDetector

SIZE = 64


def _cell(rng: np.random.Generator, defect: bool = False) -> np.ndarray:
    """A synthetic 64x64 cell: bright, three dark busbars, dark border, mild noise; a dark crack if ``defect``."""
    frame = np.full((SIZE, SIZE), 170.0)
    frame[[16, 32, 48], :] = 70.0
    frame[:2, :] = frame[-2:, :] = frame[:, :2] = frame[:, -2:] = 40.0
    frame *= rng.uniform(0.85, 1.15)  # the exposure varies from cell to cell
    frame += rng.normal(0.0, 4.0, frame.shape)
    if defect:
        rows = np.arange(20, 44)
        frame[rows, rows - 4] = frame[rows, rows - 3] = 60.0  # a diagonal crack in the lower-left middle
    pixels: np.ndarray = np.clip(frame, 0, 255).astype(np.uint8)
    return pixels


def _trained(**options: object) -> CameraDetector:
    rng = np.random.default_rng(0)
    detector = CameraDetector(input_size=SIZE, learn_every=1, seed=0, **options)  # type: ignore[arg-type]
    for _ in range(400):
        detector.learn_one(_cell(rng))
    return detector


ELPV_OPTIONS = {"depth": 4, "normalization": "gain", "error": "darker", "error_baseline": True}


@pytest.fixture(scope="module", params=[{}, ELPV_OPTIONS], ids=["defaults", "elpv"])
def detector(request: pytest.FixtureRequest) -> CameraDetector:
    return _trained(**request.param)


def test_heat_map_has_the_input_size_and_is_what_score_one_aggregates(detector: CameraDetector) -> None:
    frame = _cell(np.random.default_rng(7))
    heat = detector.heat_map(frame)
    assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32
    assert (heat >= 0).all()
    score = detector.score_one(frame)
    assert detector.last_error_map is not None
    np.testing.assert_array_equal(detector.last_error_map, heat)
    top = np.sort(heat.ravel())[-(heat.size // 100):]
    assert score == pytest.approx(float(top.mean()), rel=1e-6)


def _crack_and_elsewhere() -> tuple[np.ndarray, np.ndarray]:
    crack = np.zeros((SIZE, SIZE), dtype=bool)
    rows = np.arange(20, 44)
    crack[rows, rows - 4] = crack[rows, rows - 3] = True
    elsewhere = np.zeros_like(crack)
    elsewhere[4:-4, 4:-4] = True  # the interior of the cell ...
    elsewhere[[15, 16, 17, 31, 32, 33, 47, 48, 49]] = False  # ... without the busbars, hard but not defects
    return crack, elsewhere & ~crack


def test_heat_map_is_higher_on_the_crack_than_elsewhere_inside_the_cell(detector: CameraDetector) -> None:
    heat = detector.heat_map(_cell(np.random.default_rng(11), defect=True))
    crack, elsewhere = _crack_and_elsewhere()
    assert heat[crack].mean() > 3 * heat[elsewhere].mean()


def test_with_the_elpv_options_the_crack_is_the_peak_and_raises_the_score() -> None:
    """With the defaults the border, always hard to reconstruct, outweighs a thin crack; the baseline removes it."""
    detector = _trained(**ELPV_OPTIONS)
    rng = np.random.default_rng(11)
    clean, cracked = _cell(rng), _cell(rng, defect=True)
    heat = detector.heat_map(cracked)
    crack, _ = _crack_and_elsewhere()
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert crack[max(0, row - 2) : row + 3, max(0, col - 2) : col + 3].any()
    assert detector.score_one(cracked) > 2 * detector.score_one(clean)


def test_the_darker_error_ignores_a_bright_spot_the_squared_error_sees() -> None:
    rng = np.random.default_rng(5)
    darker, squared = _trained(**ELPV_OPTIONS), _trained(**{**ELPV_OPTIONS, "error": "squared"})
    bright = _cell(rng)
    bright[24:30, 40:46] = 255
    clean = _cell(rng)
    assert squared.score_one(bright) > 2 * squared.score_one(clean)
    assert darker.score_one(bright) < 2 * darker.score_one(clean)


def test_gain_normalisation_ignores_the_exposure_but_keeps_a_dark_region() -> None:
    detector = CameraDetector(input_size=SIZE, normalization="gain", seed=0)
    frame = _cell(np.random.default_rng(3)).astype(np.float32)
    np.testing.assert_allclose(detector._normalize(frame * 0.5), detector._normalize(frame), atol=0.05)
    darker = frame.copy()
    darker[8:24, 8:56] *= 0.5
    assert detector._normalize(darker)[10:20, 10:50].mean() < detector._normalize(frame)[10:20, 10:50].mean() - 0.5


def test_error_baseline_is_a_bounded_running_map_of_learned_frames() -> None:
    detector = _trained(**ELPV_OPTIONS)
    assert detector.baseline_map is not None and detector.baseline_map.shape == (SIZE, SIZE)
    before = detector.baseline_map.copy()
    rng = np.random.default_rng(9)
    for _ in range(16):
        detector.learn_one(_cell(rng))
    assert detector.baseline_map.shape == (SIZE, SIZE)
    assert not np.array_equal(before, detector.baseline_map)
    assert CameraDetector(input_size=SIZE).baseline_map is None


def test_pickling_keeps_the_options_and_the_baseline() -> None:
    detector = _trained(**ELPV_OPTIONS)
    frame = _cell(np.random.default_rng(4), defect=True)
    copy = pickle.loads(pickle.dumps(detector))
    assert (copy.depth, copy.normalization, copy.error, copy.error_baseline) == (4, "gain", "darker", True)
    np.testing.assert_array_equal(copy.heat_map(frame), detector.heat_map(frame))


def test_a_detector_pickled_before_the_options_existed_loads_with_the_defaults() -> None:
    detector = _trained()
    frame = _cell(np.random.default_rng(4))
    state = detector.__getstate__()
    for key in ("depth", "normalization", "error", "error_baseline", "baseline_map"):
        del state[key]
    old = CameraDetector.__new__(CameraDetector)
    old.__setstate__(state)
    assert (old.depth, old.normalization, old.error, old.error_baseline) == (2, "standardize", "squared", False)
    assert old.score_one(frame) == pytest.approx(detector.score_one(frame))


def test_input_size_must_be_divisible_by_two_to_the_depth() -> None:
    with pytest.raises(ValueError, match="multiple of 2"):
        CameraDetector(input_size=60, depth=4)
    CameraDetector(input_size=64, depth=4)
