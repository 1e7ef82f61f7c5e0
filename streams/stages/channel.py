"""A channel's way from raw score to calibrated value: smoothing, calibration, and learning a day late.

Every channel the pipeline fuses (each modality and the early-fusion detector) has one :class:`Channel` per
asset. Two kinds exist:

- :meth:`Channel.learned`: the raw score is smoothed by the median of the last ``smoothing_windows`` windows
  (a developing fault shifts many windows, a single odd window does not move a median) and calibrated by a
  :class:`~models.calibration.QuantileCalibrator` against the channel's own recent normal history; a value is
  admitted to that history only below ``calibration_gate`` (a fault standing out does not enter it), and only
  ``learn_delay`` windows later, so a fault that creeps up slowly is compared with yesterday's machine, not
  with itself;
- :meth:`Channel.probability`: the raw score is a probability already; it is clipped and nothing is learned.

>>> from streams.model_config import ModelConfig
>>> channel = Channel.learned(ModelConfig(smoothing_windows=3, calibration_min_samples=2))
>>> [channel.smooth(raw) for raw in (1.0, 5.0, 2.0)]  # the running median of the last three
[1.0, 3.0, 2.0]
>>> channel.warm
False
>>> for window in range(1, 5):  # admitted values wait learn_delay windows (here none) before they are learned
...     channel.learn(float(window), admit=True, window=window, delay=0)
>>> channel.warm, channel.calibrate(10.0) > channel.calibrate(2.5)
(True, True)
>>> Channel.probability().calibrate(1.0)
0.9999
"""

from __future__ import annotations

from typing import Any

from river import stats

from models.calibration import ProbabilityCalibrator, QuantileCalibrator
from models.fifo import FloatFifo
from streams.model_config import ModelConfig


class Channel:
    """One asset's smoother (optional), calibrator and values waiting to be learned (optional) of one channel."""

    def __init__(
        self,
        calibrator: QuantileCalibrator | ProbabilityCalibrator,
        smoothing_windows: int | None = None,
        learns_late: bool = False,
    ) -> None:
        self.calibrator = calibrator
        self.smoother: Any = (  # river's stats.RollingQuantile (untyped)
            None if smoothing_windows is None else stats.RollingQuantile(q=0.5, window_size=smoothing_windows)
        )
        self.pending = FloatFifo(keyed=True) if learns_late else None  # values keyed by the window they came at

    @classmethod
    def learned(cls, config: ModelConfig) -> Channel:
        """A channel smoothed by a running median and calibrated against its normal history, learned late."""
        calibrator = QuantileCalibrator(config.calibration_window, config.calibration_min_samples)
        return cls(calibrator, smoothing_windows=config.smoothing_windows, learns_late=True)

    @classmethod
    def probability(cls) -> Channel:
        """A channel whose raw score is already a probability: clipped, never smoothed, nothing learned."""
        return cls(ProbabilityCalibrator())

    @property
    def learns(self) -> bool:
        """Whether the channel's calibrator learns a reference (a probability channel's does not)."""
        return self.pending is not None

    @property
    def warm(self) -> bool:
        """Whether the calibrator has seen enough normal values for the channel to join fusion."""
        return bool(self.calibrator.warm)

    def smooth(self, raw: float) -> float:
        """The raw score smoothed (the running median including ``raw``), or ``raw`` when not smoothed."""
        if self.smoother is None:
            return raw
        self.smoother.update(raw)
        return float(self.smoother.get())

    def calibrate(self, value: float) -> float:
        """The (smoothed) value calibrated to (0, 1)."""
        return self.calibrator.score_one(value)

    def learn(self, value: float, admit: bool, window: int, delay: int) -> None:
        """Queue ``value`` of window number ``window`` if ``admit``; learn what has waited ``delay`` windows."""
        queue = self.pending
        if queue is None:
            return
        if admit:
            queue.append(value, window)
        while queue and queue.first_key() <= window - delay:
            self.calibrator.learn_one(queue.popleft())

    def forget_pending(self) -> None:
        """Drop the values still waiting to be learned (an alert is open: the day before it is not normal)."""
        if self.pending is not None:
            self.pending.clear()
