"""The vibration stage: the window's chunks → features → :class:`~models.vibration.VibrationDetector`.

Each chunk's features are computed with the asset's bearing kinematics (envelope lines at its defect
frequencies); a feature set computed from a chunk where the data entered (``VibrationFeatureSet``, wire kind 4)
brings its features ready-made, the same numbers the chunk would give. A window of several chunks or feature sets
takes each feature's mean (over the features all of them have, should they differ). The raw score is the
detector's mean of the largest squared standard scores; it is smoothed and calibrated like the camera's
(:meth:`Channel.learned`). The features are reported with the score, all but the load-following ones enter early
fusion, the detector learns them when the window is judged normal, and the explanation is the most deviant
features.

>>> import numpy as np
>>> from fusewatch.core.events import VibrationChunk
>>> stage = VibrationStage(ModelConfig())
>>> detector = stage.new_state(seed=0)
>>> wave = np.sin(np.linspace(0.0, 400.0, 4096))
>>> chunk = VibrationChunk(asset_id="pump-01", sensor_id="acc-1", ts=0, sample_rate_hz=20_000.0, unit="g",
...                        samples=wave)
>>> window = AlignedWindow("pump-01", 0, 60, vibration=(chunk,), frame=None, logs=(), closed_by="flush")
>>> [reading] = stage.score_batch([detector], [window], lambda asset_id: None)
>>> reading is not None and reading.raw == 0.0 and "kurtosis" in reading.features  # nothing learned yet
True
>>> "vibration.kurtosis" in reading.early and "vibration.rms" not in reading.early
True
>>> from fusewatch.core.events import VibrationFeatureSet
>>> edge = VibrationFeatureSet(asset_id="pump-01", sensor_id="acc-1", ts=0, sample_rate_hz=20_000.0, unit="g",
...                            n_samples=4096, features_version="vibration-v1", features=reading.features)
>>> both = AlignedWindow("pump-01", 0, 60, vibration=(chunk, edge), frame=None, logs=(), closed_by="flush")
>>> stage.score_batch([detector], [both], lambda asset_id: None)[0].features == reading.features
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusewatch.core.events import VibrationFeatureSet
from models.bundle import Bundle
from models.early import early_features
from models.vibration import VibrationDetector, VibrationFeatures
from streams.aligner import AlignedWindow
from streams.model_config import ModelConfig
from streams.stages.base import BearingLookup, Reading
from streams.stages.channel import Channel


class VibrationStage:
    """Vibration features and their deviation detector; one feature extractor serves every asset."""

    name = "vibration"
    gated = True

    def __init__(self, config: ModelConfig, bundle: Bundle | None = None) -> None:
        self.config = config
        self.features = VibrationFeatures()

    def new_state(self, seed: int, kind: str | None = None) -> VibrationDetector:
        """An asset's detector (deterministic: ``seed`` is not needed)."""
        return VibrationDetector(top_k=self.config.vibration_top_k)

    def new_channel(self) -> Channel:
        """Smoothed, calibrated against recent normal history, learned late."""
        return Channel.learned(self.config)

    def score_batch(self, states: Sequence[VibrationDetector], windows: Sequence[AlignedWindow],
                    bearings: BearingLookup) -> list[Reading | None]:
        """Each window's features (mean over its chunks or feature sets) and its detector's score of them.

        The waveforms of every window of the batch go through one :meth:`VibrationFeatures.transform_batch`.
        """
        waveforms = [(chunk.samples, chunk.sample_rate_hz, bearings(window.asset_id))
                     for window in windows for chunk in window.vibration if not isinstance(chunk, VibrationFeatureSet)]
        computed = iter(self.features.transform_batch(waveforms) if waveforms else [])
        readings: list[Reading | None] = []
        for state, window in zip(states, windows, strict=True):
            if not window.vibration:
                readings.append(None)
                continue
            per_chunk = [dict(item.features) if isinstance(item, VibrationFeatureSet) else next(computed)
                         for item in window.vibration]
            if len(per_chunk) == 1:
                features = per_chunk[0]
            else:
                names = [name for name in per_chunk[0] if all(name in f for f in per_chunk[1:])]
                features = {name: float(np.mean([f[name] for f in per_chunk])) for name in names}
            readings.append(Reading(state.score_one(features), early_features(features, None, None), features=features))
        return readings

    def learn_batch(self, states: Sequence[VibrationDetector], windows: Sequence[AlignedWindow],
                    readings: Sequence[Reading]) -> None:
        """Each detector learns its window's features."""
        for state, reading in zip(states, readings, strict=True):
            state.learn_one(reading.features)

    def forget_pending(self, state: VibrationDetector) -> None:
        """Nothing waits: the detector learns at once."""

    def explain(self, state: VibrationDetector, reading: Reading) -> list[tuple[str, float]]:
        """The features with the largest absolute standard scores."""
        return state.explain(reading.features)
