"""The early-fusion channel: the modality stages' ``early`` parts, concatenated, scored by one detector.

It is not a modality of its own: its input is what the modality stages read (each :class:`Reading`'s ``early``
part, in the order of the stage list; see :mod:`models.early` for how each modality enters), and it is left out
of the window's presence, its ``raw`` and ``calibrated`` scores and the warm-up test. Otherwise it is a channel
like the others: smoothed and calibrated (:meth:`Channel.learned`), learned when judged normal, and its
attribution to modalities (``shares``) goes to the fusion stage with the calibrated scores.

>>> stage = EarlyStage(ModelConfig())
>>> detector = stage.new_state(seed=0)
>>> x = stage.features([Reading(1.0, {"vibration.kurtosis": 3.0}), Reading(0.2, {"logs.evidence": 0.2})])
>>> x
{'vibration.kurtosis': 3.0, 'logs.evidence': 0.2}
>>> stage.score(detector, x)  # nothing learned yet: every feature scores zero, shared equally
(0.0, {'vibration': 0.5, 'logs': 0.5})
"""

from __future__ import annotations

from collections.abc import Iterable

from models.early import EarlyFusionDetector
from streams.model_config import ModelConfig
from streams.stages.base import Reading
from streams.stages.channel import Channel


class EarlyStage:
    """Early fusion over every present modality's features, one detector per asset."""

    name = "early"

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def new_state(self, seed: int, kind: str | None = None) -> EarlyFusionDetector:
        """An asset's detector (deterministic: ``seed`` is not needed)."""
        return EarlyFusionDetector(top_k=self.config.vibration_top_k)

    def new_channel(self) -> Channel:
        """Smoothed, calibrated against recent normal history, learned late."""
        return Channel.learned(self.config)

    @staticmethod
    def features(readings: Iterable[Reading]) -> dict[str, float]:
        """The concatenated feature vector of one window (empty when no modality contributes)."""
        x: dict[str, float] = {}
        for reading in readings:
            x.update(reading.early)
        return x

    def score(self, state: EarlyFusionDetector, x: dict[str, float]) -> tuple[float, dict[str, float]]:
        """The raw score of ``x`` and each modality's share of it."""
        return state.score_and_shares(x)

    def learn(self, state: EarlyFusionDetector, x: dict[str, float]) -> None:
        """The detector learns ``x`` as normal."""
        state.learn_one(x)
