"""Batched camera scoring and learning (models/camera_batch.py) against the detector one frame at a time.

Scoring: ``score_one`` is the batched path with a batch of one, so a batch must give each detector exactly what
its own ``score_one`` gives (score, error map, caches); the former convolution module, the numerics the project
is calibrated against, must agree within float32 rounding. Learning: the stacked Adam step is
``torch.optim.Adam`` bit for bit; whole training runs through ``learn_frames`` and ``learn_one`` agree within
float32 rounding of the gradients.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from connectors.sources.simulator.camera import CameraRenderer, make_scene
from models.camera import _BASELINE_FLOOR, CameraDetector, _smoothed_error
from models.camera_batch import learn_frames, score_frames
from models.camera_kernels import _adam, _spatial, _weight_orders

NOON = 12 * 3600 * 10**9
ELPV = {"depth": 4, "normalization": "gain", "error": "darker", "error_baseline": True}
OPTIONS = [{}, ELPV, {"depth": 4}, {"normalization": "gain"}, {"error": "darker"}, {"error_baseline": True},
           {"input_size": 32}]


def _scene(kind: str, seed: int) -> Iterator[np.ndarray]:
    """Frames of a simulated asset's camera (128 x 128): lighting over the day, sensor noise; later a leak."""
    renderer = CameraRenderer(make_scene(np.random.default_rng([seed, 5]), kind, 128),
                              np.random.default_rng([seed, 7]), occlusion_probability=0.0)
    for minute in range(10**6):
        leak = minute >= 32 and kind == "pump"  # after the 32 frames the fixture teaches
        yield renderer.pixels(NOON + minute * 60 * 10**9, 0.6 if leak else 0.0, "leak" if leak else None)


Trained = list[tuple[CameraDetector, Iterator[np.ndarray]]]


@pytest.fixture(scope="module")
def trained() -> Trained:
    """Two detectors per option set, each taught 32 frames of its own scene (two Adam steps)."""
    out = []
    for index, options in enumerate(OPTIONS * 2):
        detector = CameraDetector(seed=index, learn_every=1, **options)  # type: ignore[arg-type]
        frames = _scene("pump" if index % 2 else "motor", index)
        for _ in range(32):
            detector.learn_one(next(frames))
        out.append((detector, frames))
    return out


def _module_score(detector: CameraDetector, frame: np.ndarray) -> float:
    """The score as the former code computed it: the convolution module on one frame."""
    prepared = detector._prepare(frame)
    with torch.inference_mode():
        reconstruction = detector.model(torch.from_numpy(prepared[None, None]))[0, 0].numpy()
    error = _smoothed_error(reconstruction, prepared, detector.error)
    if detector.error_baseline and detector.baseline_map is not None:
        error = error / (detector.baseline_map + _BASELINE_FLOOR * float(detector.baseline_map.mean()))
    flat = error.ravel()
    k = max(1, flat.size // 100)
    return float(np.partition(flat, flat.size - k)[-k:].mean())


def test_a_batch_scores_every_detector_as_its_own_score_one(trained: Trained) -> None:
    """Mixed architectures (depth 2 and 4, input 64 and 32) and options in one call; leaks in half the frames."""
    detectors = [detector for detector, _ in trained]
    twins = copy.deepcopy(detectors)
    frames = [next(stream) for _, stream in trained]
    scores = score_frames(detectors, frames)
    assert scores == [twin.score_one(frame) for twin, frame in zip(twins, frames, strict=True)]
    for detector, twin, frame in zip(detectors, twins, frames, strict=True):
        assert detector.last_error_map is not None and twin.last_error_map is not None
        np.testing.assert_array_equal(detector.last_error_map, twin.last_error_map)
        assert detector.explain() == twin.explain()
        assert detector._last_input is frame and twin._last_input is frame
        np.testing.assert_array_equal(detector._last_pooled, twin._last_pooled)
        np.testing.assert_array_equal(detector._last_prepared, twin._last_prepared)


def test_batched_scores_agree_with_the_former_convolution_module(trained: Trained) -> None:
    detectors = [detector for detector, _ in trained]
    for _ in range(2):
        frames = [next(stream) for _, stream in trained]
        scores = score_frames(detectors, frames)
        expected = [_module_score(detector, frame) for detector, frame in zip(detectors, frames, strict=True)]
        np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_learning_a_frame_just_scored_in_a_batch_is_learning_it_after_score_one(trained: Trained) -> None:
    """The caches a batch leaves (pooled and prepared frame) are the ones a later ``learn_one`` uses."""
    detectors = copy.deepcopy([detector for detector, _ in trained[:4]])
    twins = copy.deepcopy(detectors)
    frames = [next(stream) for _, stream in trained[:4]]
    score_frames(detectors, frames)
    for detector, twin, frame in zip(detectors, twins, frames, strict=True):
        twin.score_one(frame)
        for _ in range(16):  # one more Adam step, on the same frame
            detector.learn_one(frame)
            twin.learn_one(frame)
        for mine, theirs in zip(detector.model.parameters(), twin.model.parameters(), strict=True):
            assert torch.equal(mine, theirs)


def test_a_frame_too_small_for_its_model_is_refused_before_anything_changes() -> None:
    detectors = [CameraDetector(seed=0), CameraDetector(seed=1)]
    frames = [np.zeros((128, 128), np.uint8), np.zeros((48, 128), np.uint8)]
    with pytest.raises(ValueError, match="frame 1: 128x48 is smaller than the model input 64x64"):
        score_frames(detectors, frames)
    with pytest.raises(ValueError, match="frame 1"):
        learn_frames(detectors, frames)
    assert detectors[0]._last_input is None and detectors[0]._offered == 0


def test_a_process_that_scores_first_can_learn_in_batches() -> None:
    """The layouts cached while scoring (under ``torch.inference_mode``) serve learning too."""
    _spatial.cache_clear()
    _weight_orders.cache_clear()
    detectors = [CameraDetector(seed=seed, batch_size=1) for seed in range(2)]
    frames = [np.full((128, 128), 90, np.uint8), np.full((128, 128), 120, np.uint8)]
    score_frames(detectors, frames)
    learn_frames(detectors, frames)
    assert [detector.steps for detector in detectors] == [1, 1]


def _cell(rng: np.random.Generator) -> np.ndarray:
    """A synthetic 64 x 64 solar cell (busbars, border, exposure, noise)."""
    frame = np.full((64, 64), 170.0)
    frame[[16, 32, 48], :] = 70.0
    frame[:2, :] = frame[-2:, :] = frame[:, :2] = frame[:, -2:] = 40.0
    frame = frame * rng.uniform(0.85, 1.15) + rng.normal(0.0, 4.0, frame.shape)
    pixels: np.ndarray = np.clip(frame, 0, 255).astype(np.uint8)
    return pixels


def _train_both(count: int, frames: int, **options: object) -> tuple[list[CameraDetector], list[CameraDetector]]:
    """The same detectors and frames through ``learn_one`` and through ``learn_frames``."""
    single = [CameraDetector(input_size=64, seed=seed, **options) for seed in range(count)]  # type: ignore[arg-type]
    batched = copy.deepcopy(single)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        batch = [_cell(rng) for _ in range(count)]
        for detector, frame in zip(single, batch, strict=True):
            detector.learn_one(frame)
        learn_frames(batched, batch)
    return single, batched


def _parameters_agree(single: list[CameraDetector], batched: list[CameraDetector]) -> None:
    """All but a handful of weights within 1e-5 (most within 1e-7), none beyond 1e-4.

    The two ways of computing a convolution round differently (gradients agree within ~1e-9 absolute); a few
    weights get gradients at that noise level (a thousandth of their tensor's median), and Adam divides each
    gradient by its own running magnitude, so their rounding (up to 1e-4 relative) moves them by ~1e-5 within
    ten steps (measured: 2 of 33,036 weights above 1e-5, at most 1.05e-5). The scores do not notice.
    """
    differences = np.concatenate([(mine - theirs).abs().detach().numpy().ravel()
                                  for a, b in zip(single, batched, strict=True)
                                  for mine, theirs in zip(a.model.parameters(), b.model.parameters(), strict=True)])
    assert np.mean(differences < 1e-5) > 0.999 and differences.max() < 1e-4


def _scores_agree(single: list[CameraDetector], batched: list[CameraDetector]) -> None:
    rng = np.random.default_rng(1)
    frames = [_cell(rng) for _ in single]
    np.testing.assert_allclose(score_frames(batched, frames), score_frames(single, frames), rtol=1e-5)


def test_learn_frames_trains_as_learn_one_and_the_state_survives_pickling() -> None:
    """12 detectors, 160 frames each: 10 Adam steps, all due in the same calls (one batched step each)."""
    single, batched = _train_both(12, 160)
    assert [d.steps for d in batched] == [d.steps for d in single] == [10] * 12
    _parameters_agree(single, batched)
    _scores_agree(single, batched)
    for a, b in zip(single, batched, strict=True):
        reference, written = a.optimizer.state_dict(), b.optimizer.state_dict()
        assert reference["param_groups"] == written["param_groups"]
        for index, slot in reference["state"].items():
            assert list(slot) == list(written["state"][index]) == ["step", "exp_avg", "exp_avg_sq"]
            assert written["state"][index]["step"].dtype == slot["step"].dtype and float(slot["step"]) == 10.0
            torch.testing.assert_close(written["state"][index]["exp_avg"], slot["exp_avg"], rtol=1e-3, atol=1e-6)
    restored = pickle.loads(pickle.dumps(batched[0]))
    for mine, theirs in zip(restored.model.parameters(), batched[0].model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    rng = np.random.default_rng(2)
    for _ in range(16):  # a further single step goes on from the written-back Adam state alike
        frame = _cell(rng)
        restored.learn_one(frame)
        batched[0].learn_one(frame)
    for mine, theirs in zip(restored.model.parameters(), batched[0].model.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_learn_frames_with_the_elpv_options_and_a_learning_delay() -> None:
    """Depth 4, gain, darker error, error baseline; after the warm-up one frame in 2 is learned 6 frames late."""
    options = {**ELPV, "batch_size": 8, "warm_steps": 4, "learn_every": 2, "learn_delay": 6}
    single, batched = _train_both(6, 120, **options)
    assert [d.steps for d in batched] == [d.steps for d in single] and single[0].steps > 4
    _parameters_agree(single, batched)
    _scores_agree(single, batched)
    for a, b in zip(single, batched, strict=True):
        assert a.baseline_map is not None and b.baseline_map is not None
        np.testing.assert_allclose(b.baseline_map, a.baseline_map, rtol=1e-4, atol=1e-6)
        assert [offered for offered, _ in a._pending] == [offered for offered, _ in b._pending]
        assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a._pending, b._pending, strict=True))


def test_learning_in_batches_does_not_depend_on_how_the_frames_are_batched() -> None:
    """Each detector's rows are computed alone: together or one at a time, bit for bit the same."""
    together = [CameraDetector(seed=seed, batch_size=4) for seed in range(10)]
    alone = copy.deepcopy(together)
    rng = np.random.default_rng(3)
    for _ in range(8):
        frames = [_cell(rng) for _ in together]
        learn_frames(together, frames)
        for detector, frame in zip(alone, frames, strict=True):
            learn_frames([detector], [frame])
    for a, b in zip(together, alone, strict=True):
        assert a.steps == b.steps == 2
        for mine, theirs in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.equal(mine, theirs)


def test_the_stacked_adam_step_is_torch_adam_bit_for_bit() -> None:
    """Given the same gradients: different rates, step counts (a first step among them) and gradient scales."""
    rng = np.random.default_rng(0)
    detectors = [CameraDetector(seed=seed, learning_rate=rate) for seed, rate in enumerate((3e-3, 1e-3, 3e-3))]
    for index, detector in enumerate(detectors):
        for _ in range(2 * index):
            detector._step(rng.normal(size=(16, 64, 64)).astype(np.float32))
    references = copy.deepcopy(detectors)
    grads = [[torch.randn_like(p) * 10 ** rng.uniform(-9, 0) for p in d.model.parameters()] for d in detectors]
    for reference, own in zip(references, grads, strict=True):
        for param, grad in zip(reference.model.parameters(), own, strict=True):
            param.grad = grad.clone()
        reference.optimizer.step()
    params = [detector._parameters() for detector in detectors]
    with torch.no_grad():
        stacked = [torch.stack([own[k] for own in params]) for k in range(len(params[0]))]
        for k, tensor in enumerate(stacked):
            tensor.grad = torch.stack([own[k] for own in grads])
        _adam([detector.optimizer for detector in detectors], params, stacked)
    for detector, reference in zip(detectors, references, strict=True):
        for mine, theirs in zip(detector.model.parameters(), reference.model.parameters(), strict=True):
            assert torch.equal(mine, theirs)
            for key in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(detector.optimizer.state[mine][key], reference.optimizer.state[theirs][key])


def test_repeated_detectors_mixed_depths_and_other_optimizers() -> None:
    """A detector listed twice learns its frames in order; depths train apart; a non-plain Adam steps alone."""
    def detectors() -> list[CameraDetector]:
        out = [CameraDetector(seed=seed, batch_size=2, depth=depth) for seed, depth in enumerate((2, 4, 2))]
        out[2].optimizer = torch.optim.Adam(out[2].model.parameters(), lr=1e-3, weight_decay=1e-4)
        return out

    rng = np.random.default_rng(0)
    frames = [_cell(rng) for _ in range(6)]
    mixed, apart = detectors(), detectors()
    learn_frames([mixed[0], mixed[1], mixed[2], mixed[0], mixed[1], mixed[0]], frames)
    learn_frames([apart[0], apart[1], apart[2]], frames[:3])
    learn_frames([apart[0], apart[1]], frames[3:5])
    learn_frames([apart[0]], frames[5:])
    alone = detectors()[2]
    alone.learn_one(frames[2])
    assert [d.steps for d in mixed] == [1, 1, 0] and mixed[0]._offered == 3 and len(mixed[0]._buffer) == 1
    for a, b in zip(mixed, apart, strict=True):
        for mine, theirs in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.equal(mine, theirs)
    assert len(alone._buffer) == len(mixed[2]._buffer) == 1
