"""Batch scoring gives every window the score window-by-window scoring gives it, and the same alerts.

The reference is the processor as it scores without a batch: each message's windows at once. The same messages
then go through batches of one plant minute (the embedded runner's pump: every asset once per batch) and of half
an hour (every asset many times per batch, so the pipeline cuts it into runs of distinct assets).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import InputEvent, encode
from fusewatch.core.events import CameraFrame
from fusewatch.core.topics import Topics
from streams.alerts import AlertPolicyConfig
from streams.model_config import ModelConfig
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput
from streams.settings import StreamSettings

TOPICS = Topics()
SETTINGS = StreamSettings(
    models=ModelConfig(warmup_windows=60, calibration_min_samples=10, learn_delay=0),
    alerts=AlertPolicyConfig(open_threshold=0.05, close_threshold=0.02, close_windows=5, cooldown_s=60))
ASSETS = ["pump-01", "motor-02", "pump-03"]


@pytest.fixture(scope="module")
def plant() -> PlantSimulator:
    """Pump-01's outer-race fault grows, fails and is repaired within the day; frames, logs and waveforms."""
    return PlantSimulator(SimulatorConfig(
        assets=6, days=1.05, seed=2, fault_free_days=0.05, min_fault_days=0.2, max_fault_days=0.4,
        min_downtime_hours=1.0, max_downtime_hours=2.0, sample_rate_hz=4_000.0, frame_size=64,
        snapshot_seconds=0.5))


def _steps(plant: PlantSimulator) -> Iterator[list[InputEvent]]:
    return plant.steps(ASSETS)


def _run(plant: PlantSimulator, minutes_per_batch: int | None) -> CollectingOutput:
    """The plant's messages through one processor; ``None``: no batch (each message's windows scored at once)."""
    output = CollectingOutput()
    processor = StreamProcessor(SETTINGS, output, run_id="batch", processing_clock=lambda: 0,
                                assets=plant.asset_registry())
    offset, now = 0, 0
    steps = list(_steps(plant))
    size = minutes_per_batch or 1
    for first in range(0, len(steps), size):
        group = [event for step in steps[first:first + size] for event in step]
        if minutes_per_batch is None:
            for event in group:
                now = max(now, event.ts)
                processor.handle(encode(event), TOPICS.for_event(event), 0, offset, now)
                processor.tick(now)
                offset += 1
            continue
        with processor.batch():
            for event in group:
                now = max(now, event.ts)
                processor.handle(encode(event), TOPICS.for_event(event), 0, offset, now)
                processor.tick(now)
                offset += 1
    processor.flush()
    return output


@pytest.fixture(scope="module")
def window_by_window(plant: PlantSimulator) -> CollectingOutput:
    return _run(plant, None)


@pytest.mark.parametrize("minutes", [1, 30])
def test_batches_score_and_alert_as_window_by_window(
    plant: PlantSimulator, window_by_window: CollectingOutput, minutes: int
) -> None:
    batched = _run(plant, minutes)
    a, b = window_by_window, batched
    assert not a.letters and not b.letters
    assert len(a.scored) == len(b.scored) > 3 * 1.05 * 24 * 60 * 0.9
    assert sum(s.score.present["camera"] for s in a.scored) > 3000  # the frames are scored, in batches too
    for mine, theirs in zip(a.scored, b.scored, strict=True):
        one, other = mine.score, theirs.score
        assert (one.asset_id, one.window_end, one.leading, one.warmup) == (
            other.asset_id, other.window_end, other.leading, other.warmup)
        assert other.fused == pytest.approx(one.fused, rel=1e-6, abs=1e-9)
        assert set(one.calibrated) == set(other.calibrated)
        for channel, value in one.calibrated.items():
            assert other.calibrated[channel] == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert len(a.alerts) >= 4 and {"opened", "closed"} <= {alert.transition for alert in a.alerts}
    assert [alert.model_dump() for alert in a.alerts] == [alert.model_dump() for alert in b.alerts]


def test_a_window_that_cannot_be_scored_is_a_dead_letter_and_its_batch_goes_on(plant: PlantSimulator) -> None:
    """A frame too small for the camera model (motor-02's first) fails its window's reading; the batch's other
    windows are scored and the message that closed the failing window becomes a dead letter naming the error."""
    output = CollectingOutput()
    processor = StreamProcessor(SETTINGS, output, run_id="batch", processing_clock=lambda: 0,
                                assets=plant.asset_registry())
    steps = list(_steps(plant))[:8]
    offset, spoiled = 0, False
    with processor.batch():
        for step in steps:
            for event in step:
                if isinstance(event, CameraFrame) and event.asset_id == "motor-02" and not spoiled:
                    spoiled = True
                    event = event.model_copy(update={"width": 8, "height": 8, "encoding": "png", "data": _png(8)})
                processor.handle(encode(event), TOPICS.for_event(event), 0, offset, event.ts)
                offset += 1
        closed = processor.waiting
        assert closed >= 2 * len(ASSETS)  # nothing is scored before the batch ends
        assert not output.scored
    errors = [letter for letter in output.letters if letter.error.startswith("error: ValueError")]
    assert len(errors) == 1 and all("smaller than the model input" in letter.error for letter in errors)
    assert {s.score.asset_id for s in output.scored} == set(ASSETS)
    assert len(output.scored) + len(errors) == closed


def _png(size: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), 90, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
