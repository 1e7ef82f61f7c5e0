"""The per-pixel background camera model (models/camera_background.py) and its place in the camera stage."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from connectors.sources.simulator.camera import CameraRenderer, make_scene
from fusewatch.core.events import CameraFrame
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_MIN
from models.camera import CameraDetector
from models.camera_background import PixelBackground
from streams.aligner import AlignedWindow, TimedFrame
from streams.model_config import ModelConfig
from streams.stages.camera import CameraModel, CameraStage

FRAME_MIN = 10  # one frame every 10 plant minutes: 144 a day


def scene_frames(days: float, leak_from_day: float | None, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A simulated pump's frames (day and night light, noise, occlusions) and their times in days; with an oil
    leak whose severity grows linearly from ``leak_from_day`` to 1.0 at the end."""
    renderer = CameraRenderer(make_scene(np.random.default_rng([seed, 5]), "pump", 128), np.random.default_rng(seed))
    times = np.arange(0, days, FRAME_MIN / 1440)
    frames = []
    for day in times:
        leaking = leak_from_day is not None and day >= leak_from_day
        severity = (day - leak_from_day) / (days - leak_from_day) if leak_from_day is not None and leaking else 0.0
        frames.append(renderer.pixels(int(day * NS_PER_DAY), severity, "leak" if severity > 0 else None))
    return times, np.stack(frames)


def background(**overrides: float) -> PixelBackground:
    """A background at the pipeline's settings scaled to a frame every 10 minutes: warm for half a day, then one
    frame in two learned a day late, remembering three days."""
    settings: dict[str, float] = {"warm_frames": 72, "learn_every": 2, "learn_delay": 144, "memory_frames": 216}
    settings.update(overrides)
    return PixelBackground(input_size=64, memory_frames=settings["memory_frames"],
                           warm_frames=int(settings["warm_frames"]), learn_every=int(settings["learn_every"]),
                           learn_delay=int(settings["learn_delay"]))


def scores(model: PixelBackground | CameraDetector, frames: np.ndarray) -> np.ndarray:
    out = []
    for frame in frames:
        out.append(model.score_one(frame))
        model.learn_one(frame)
    return np.array(out)


def smoothed(values: np.ndarray) -> np.ndarray:
    """The running median of 10 the camera stage applies before calibration (a passing person is one frame)."""
    return np.array([np.median(values[max(0, i - 9):i + 1]) for i in range(len(values))])


def test_a_slowly_spreading_stain_rises_above_every_clean_frame_day_and_night() -> None:
    times, frames = scene_frames(days=7.0, leak_from_day=4.0)
    got = smoothed(scores(background(), frames))
    clean = got[(times >= 1.0) & (times < 4.0)]  # after the first day, nights and occlusions included
    last_day = got[times >= 6.0]
    assert np.median(last_day) > 2.0 * clean.max(), (np.median(last_day), clean.max())
    # and it shows in the heat map where the stain spreads: the lower half of the frame (skid and floor)
    model = background()
    scores(model, frames[:-1])
    model.score_one(frames[-1])
    assert dict(model.explain())["peak_row"] > 0.5


def test_without_a_fault_the_score_stays_in_its_range() -> None:
    times, frames = scene_frames(days=6.0, leak_from_day=None)
    got = smoothed(scores(background(), frames))
    first, later = got[(times >= 1.0) & (times < 3.0)], got[times >= 3.0]
    assert np.percentile(later, 99) < 1.5 * np.percentile(first, 99)


def test_a_global_change_of_light_is_not_a_deviation() -> None:
    _, frames = scene_frames(days=1.0, leak_from_day=None)
    model = background(warm_frames=200)
    scores(model, frames[:-1])
    frame = frames[-1]
    darker = np.round(frame.astype(np.float32) * 0.6).astype(np.uint8)
    assert model.score_one(darker) < 1.5 * model.score_one(frame) + 1.0


def test_frames_are_learned_a_day_late_and_forgotten_when_an_alert_opens() -> None:
    frame = np.full((64, 64), 100, dtype=np.uint8)
    model = PixelBackground(input_size=16, warm_frames=3, learn_every=2, learn_delay=10)
    for _ in range(3):
        model.learn_one(frame)
    assert model.learned == 3  # warm: at once
    for _ in range(9):
        model.learn_one(frame)
    assert model.learned == 3  # four frames wait: offered 4, 6, 8 and 10, due 10 frames later
    model.learn_one(frame)
    model.learn_one(frame)
    assert model.learned == 4  # offered frame 4 was learned at offer 14
    model.forget_pending()
    for _ in range(8):
        model.learn_one(frame)
    assert model.learned == 4  # the dropped frames are never learned; the next ones wait their day


def test_a_background_scores_the_same_after_a_pickle_round_trip() -> None:
    _, frames = scene_frames(days=0.5, leak_from_day=None)
    model = background(learn_delay=10)
    scores(model, frames[:-1])
    copy = pickle.loads(pickle.dumps(model))
    assert copy.score_one(frames[-1]) == model.score_one(frames[-1])
    assert copy.learned == model.learned and len(copy._pending) == len(model._pending)


def test_the_first_frames_score_zero_and_bad_memory_is_refused() -> None:
    model = PixelBackground(input_size=8)
    frame = np.full((16, 16), 80, dtype=np.uint8)
    assert model.score_one(frame) == 0.0
    with pytest.raises(ValueError, match="memory_frames"):
        PixelBackground(memory_frames=0.5)


def window(asset: str, pixels: np.ndarray | None) -> AlignedWindow:
    frame = None
    if pixels is not None:
        event = CameraFrame(asset_id=asset, camera_id="cam-1", ts=0, width=pixels.shape[1], height=pixels.shape[0],
                            encoding="png", data=b"\x89PNG\r\n\x1a\n")
        frame = TimedFrame(event, pixels)
    return AlignedWindow(asset, 0, NS_PER_MIN, vibration=(), frame=frame, logs=(), closed_by="flush")


def test_the_stage_builds_backgrounds_when_configured_and_scores_them_beside_autoencoders() -> None:
    stage = CameraStage(ModelConfig(camera_model="background", camera_memory_windows=800, learn_delay=30))
    state = stage.new_state(seed=0, kind="pump")
    assert isinstance(state, PixelBackground)
    assert (state.memory_frames, state.learn_delay, state.learn_every) == (100.0, 30, 8)
    _, frames = scene_frames(days=0.2, leak_from_day=None)
    encoder = CameraStage(ModelConfig()).new_state(seed=0)
    assert isinstance(encoder, CameraDetector)
    states: list[CameraModel] = [state, encoder, state]
    for pixels in frames:
        alone = [copy.deepcopy(state).score_one(pixels), copy.deepcopy(encoder).score_one(pixels)]
        windows = [window("pump-01", pixels), window("pump-02", pixels), window("pump-01", None)]
        readings = stage.score_batch(states, windows, lambda asset: None)
        assert readings[2] is None
        assert [r.raw for r in readings[:2] if r is not None] == alone  # each model's own score, in its place
        stage.learn_batch(states[:2], windows[:2], [r for r in readings[:2] if r is not None])
    assert state.learned == len(frames)  # still warm: every frame at once
    assert readings[0] is not None
    assert [name for name, _ in stage.explain(state, readings[0])] == ["peak_error", "peak_row", "peak_col"]


def test_the_pipeline_lets_a_background_learn_windows_above_the_gate_but_not_while_an_alert_is_open() -> None:
    """The autoencoder learns only windows calibrated below ``learn_gate``; a background (not gated) learns every
    window the asset may learn, so its night frames keep being learned when they score a little higher."""
    from streams.pipeline import Pipeline

    config = ModelConfig(camera_model="background", warmup_windows=20, calibration_min_samples=10, learn_delay=0,
                         smoothing_windows=1)
    pipeline = Pipeline(config)
    assert [stage.gated for stage in pipeline.stages] == [True, False, True]  # vibration, camera, logs
    assert CameraStage(ModelConfig()).gated
    _, frames = scene_frames(days=0.3, leak_from_day=None)
    for minute, pixels in enumerate(frames[:40]):
        pipeline.process(window_at("pump-01", minute, pixels))
    model = pipeline._state("pump-01", 0).models["camera"]
    assert isinstance(model, PixelBackground) and model.learned == 40
    odd = 255 - frames[40]  # the scene in negative: far beyond anything learned
    scored = pipeline.process(window_at("pump-01", 40, odd))
    assert scored.fusion_input["camera"] > config.learn_gate and not scored.score.warmup
    assert model.learned == 41  # learned although above the gate
    pipeline.process(window_at("pump-01", 41, odd), learn=False)  # an alert is open
    assert model.learned == 41


def window_at(asset: str, minute: int, pixels: np.ndarray) -> AlignedWindow:
    event = CameraFrame(asset_id=asset, camera_id="cam-1", ts=minute * NS_PER_MIN, width=pixels.shape[1],
                        height=pixels.shape[0], encoding="png", data=b"\x89PNG\r\n\x1a\n")
    return AlignedWindow(asset, minute * NS_PER_MIN, (minute + 1) * NS_PER_MIN, vibration=(),
                         frame=TimedFrame(event, pixels), logs=(), closed_by="flush")
