"""The vibration stage: the window's chunks → features → :class:`~models.vibration.VibrationDetector`.

Each chunk's features are computed with the asset's bearing kinematics (envelope lines at its defect
frequencies); a window of several chunks takes each feature's mean. The raw score is the detector's mean of the
largest squared standard scores; it is smoothed and calibrated like the camera's (:meth:`Channel.learned`). The
features are reported with the score, all but the load-following ones enter early fusion, the detector learns
them when the window is judged normal, and the explanation is the most deviant features.

>>> import numpy as np
>>> from fusewatch.core.events import VibrationChunk
>>> stage = VibrationStage(ModelConfig())
>>> detector = stage.new_state(seed=0)
>>> wave = np.sin(np.linspace(0.0, 400.0, 4096))
>>> chunk = VibrationChunk(asset_id="pump-01", sensor_id="acc-1", ts=0, sample_rate_hz=20_000.0, unit="g",
...                        samples=wave)
>>> window = AlignedWindow("pump-01", 0, 60, vibration=(chunk,), frame=None, logs=(), closed_by="flush")
>>> reading = stage.score(detector, window, lambda asset_id: None)
>>> reading is not None and reading.raw == 0.0 and "kurtosis" in reading.features  # nothing learned yet
True
>>> "vibration.kurtosis" in reading.early and "vibration.rms" not in reading.early
True
"""

from __future__ import annotations

import numpy as np

from models.early import early_features
from models.vibration import VibrationDetector, VibrationFeatures
from streams.aligner import AlignedWindow
from streams.model_config import ModelConfig
from streams.stages.base import BearingLookup, Reading
from streams.stages.channel import Channel


class VibrationStage:
    """Vibration features and their deviation detector; one feature extractor serves every asset."""

    name = "vibration"

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.features = VibrationFeatures()

    def new_state(self, seed: int) -> VibrationDetector:
        """An asset's detector (deterministic: ``seed`` is not needed)."""
        return VibrationDetector(top_k=self.config.vibration_top_k)

    def new_channel(self) -> Channel:
        """Smoothed, calibrated against recent normal history, learned late."""
        return Channel.learned(self.config)

    def score(self, state: VibrationDetector, window: AlignedWindow, bearings: BearingLookup) -> Reading | None:
        """The window's features (mean over its chunks) and the detector's score of them."""
        if not window.vibration:
            return None
        bearing = bearings(window.asset_id)
        per_chunk = [self.features.transform(c.samples, c.sample_rate_hz, bearing) for c in window.vibration]
        if len(per_chunk) == 1:
            features = per_chunk[0]
        else:
            features = {name: float(np.mean([f[name] for f in per_chunk])) for name in per_chunk[0]}
        return Reading(state.score_one(features), early_features(features, None, None), features=features)

    def learn(self, state: VibrationDetector, window: AlignedWindow, reading: Reading) -> None:
        """The detector learns the window's features."""
        state.learn_one(reading.features)

    def forget_pending(self, state: VibrationDetector) -> None:
        """Nothing waits: the detector learns at once."""

    def explain(self, state: VibrationDetector, reading: Reading) -> list[tuple[str, float]]:
        """The features with the largest absolute standard scores."""
        return state.explain(reading.features)
