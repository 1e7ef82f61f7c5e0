"""Online calibration of raw anomaly scores to [0, 1].

Raw scores of different detectors live on different scales. :class:`QuantileCalibrator` maps a raw score to
its empirical CDF value over a sliding reference window of recent scores learned as normal, so that under
normal operation the calibrated score is uniform on (0, 1) and ``1 - calibrated`` reads as a p-value. Beyond
the reference's upper tail the p-value is extrapolated with a Pareto tail fitted to the largest values
(peaks over threshold), so a score far outside anything seen gets a correspondingly tiny p-value instead of
stopping at ``1 / window``.

>>> cal = QuantileCalibrator(window=100, min_samples=10)
>>> for value in range(100):
...     cal.learn_one(float(value))
>>> round(cal.score_one(49.5), 3), cal.warm
(0.5, True)
>>> p_near, p_far = 1 - cal.score_one(99.5), 1 - cal.score_one(150.0)
>>> round(p_near, 4), p_far < 1e-6
(0.0089, True)
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right, insort
from collections import deque
from typing import Any

from models.fifo import FloatFifo


class QuantileCalibrator:
    """Empirical-CDF calibration over a sliding window of learned raw scores.

    Parameters
    ----------
    window
        How many recent learned values form the reference distribution.
    min_samples
        Below this many learned values the calibrator is not ``warm`` (scores are flagged as warm-up).

    tail
        Fraction of the reference treated as the tail. Above its lower edge the p-value follows a Pareto tail
        fitted to the values above the edge, ``tail * (x / edge) ** (-1 / mean_log_excess)`` (an exponential
        tail, ``tail * exp(-(x - edge) / mean_excess)``, when scores can be zero or negative). A power law
        decays more slowly than the tails of the scores seen here, so extrapolated p-values err on the side of
        fewer alarms.

    In the body the calibrated value uses mid-ranks, ``(below + ties / 2 + 0.5) / (n + 1)``, so it never reaches
    exactly 0 or 1 and ``1 - score`` can be used as a p-value.
    """

    def __init__(self, window: int = 2880, min_samples: int = 60, tail: float = 0.05) -> None:
        if window < 2:
            raise ValueError("window must be at least 2")
        if not 1 <= min_samples <= window:
            raise ValueError("min_samples must be between 1 and window")
        if not 0.0 < tail < 0.5:
            raise ValueError("tail must be between 0 and 0.5")
        self.window = window
        self.min_samples = min_samples
        self.tail = tail
        self._fifo = FloatFifo()  # learned values in arrival order
        self._sorted = array("d")  # the same values sorted (8 bytes each, not a float object + pointer)

    @property
    def n(self) -> int:
        """How many values the reference holds."""
        return len(self._sorted)

    @property
    def warm(self) -> bool:
        """True once the reference holds at least ``min_samples`` values."""
        return len(self._sorted) >= self.min_samples

    def learn_one(self, x: float) -> None:
        """Add one raw score known (or assumed) to be normal to the reference window."""
        value = float(x)
        self._fifo.append(value)
        insort(self._sorted, value)
        if len(self._fifo) > self.window:
            old = self._fifo.popleft()
            del self._sorted[bisect_left(self._sorted, old)]

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore, converting the lists of states pickled before the flat arrays."""
        if isinstance(state.get("_fifo"), deque):
            state["_fifo"] = FloatFifo(state["_fifo"])
            state["_sorted"] = array("d", state["_sorted"])
        self.__dict__.update(state)

    def score_one(self, x: float) -> float:
        """Return the calibrated score of ``x`` in (0, 1); 0.5 while the reference is empty."""
        n = len(self._sorted)
        if n == 0:
            return 0.5
        value = float(x)
        tail_size = int(self.tail * n)
        if tail_size >= 5:
            edge = self._sorted[n - tail_size - 1]
            if value > edge:
                return 1.0 - self._tail_p_value(value, edge, tail_size, n)
        below = bisect_left(self._sorted, value)
        ties = bisect_right(self._sorted, value) - below
        return (below + ties / 2 + 0.5) / (n + 1)

    def _tail_p_value(self, value: float, edge: float, tail_size: int, n: int) -> float:
        top = self._sorted[n - tail_size :]
        p_edge = (tail_size + 0.5) / (n + 1)
        if edge > 0.0:
            scale = sum(math.log(v / edge) for v in top) / tail_size
            distance = math.log(value / edge)
        else:
            scale = sum(top) / tail_size - edge
            distance = value - edge
        if scale <= 0.0:
            return p_edge / (n + 1)
        return p_edge * math.exp(-distance / scale)


class ProbabilityCalibrator:
    """For scores that are already probabilities: clip into ``[0, ceiling]`` and learn nothing.

    The log-severity model outputs the probability that an entry reports a symptom. An empirical CDF would
    be the wrong calibration there: most windows carry only routine entries with a severity of zero, so any
    single non-zero note would map to the very top of the distribution for days.

    >>> ProbabilityCalibrator().score_one(1.0), ProbabilityCalibrator().score_one(0.42)
    (0.9999, 0.42)
    """

    warm = True

    def __init__(self, ceiling: float = 0.9999) -> None:
        if not 0.0 < ceiling <= 1.0:
            raise ValueError("ceiling must be in (0, 1]")
        self.ceiling = ceiling

    def learn_one(self, x: float) -> None:
        """Nothing to learn: the input is a probability already."""

    def score_one(self, x: float) -> float:
        """The probability itself, clipped."""
        return min(max(float(x), 0.0), self.ceiling)
