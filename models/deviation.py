"""The largest standardised deviations from normal: the online detector behind vibration and early fusion.

Each feature is standardised with river's running ``StandardScaler`` (mean and variance of the observations
learned as normal); the score is the mean of the ``top_k`` largest squared standard scores. A fault that moves
a handful of features far from normal while the others stay put stands out, where a detector averaging over
all features would dilute it. Features may appear and disappear between observations.

>>> detector = DeviationDetector(top_k=1)
>>> for i in range(100):
...     detector.learn_one({"rms": 1.0 + 0.01 * (i % 10), "kurtosis": 3.0 + 0.01 * (i % 7)})
>>> detector.score_one({"rms": 1.05, "kurtosis": 3.03}) < 4 < detector.score_one({"rms": 1.05, "kurtosis": 4.0})
True
>>> detector.explain({"rms": 1.05, "kurtosis": 4.0}, top=1)[0][0]
'kurtosis'
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from river import preprocessing


class DeviationDetector:
    """Online detector: mean of the ``top_k`` largest squared standard scores of the features.

    Parameters
    ----------
    top_k
        How many of the largest squared standard scores are averaged.
    min_std
        Features whose running standard deviation is below this score zero (constant so far).
    std_floor
        Deviations are measured in units of at least this: a feature that is almost always the same value
        (zero-inflated, like the evidence of a log that is mostly silent) would otherwise turn its first small
        change into hundreds of standard deviations.
    ignore
        Features reported but never scored.
    """

    def __init__(
        self, top_k: int = 3, min_std: float = 1e-6, ignore: tuple[str, ...] = (), std_floor: float = 0.0
    ) -> None:
        self.top_k = top_k
        self.min_std = min_std
        self.std_floor = std_floor
        self.ignore = frozenset(ignore)
        self.scaler = preprocessing.StandardScaler()

    def _z(self, x: Mapping[str, float]) -> dict[str, float]:
        z: dict[str, float] = {}
        for name, value in x.items():
            if name in self.ignore:
                continue
            mean = self.scaler.means.get(name, 0.0)
            std = math.sqrt(self.scaler.vars.get(name, 0.0))
            z[name] = (value - mean) / max(std, self.std_floor) if std > self.min_std else 0.0
        return z

    def _top_squares(self, x: Mapping[str, float]) -> list[tuple[float, str]]:
        return sorted(((value * value, name) for name, value in self._z(x).items()), reverse=True)[: self.top_k]

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn one observation as normal."""
        self.scaler.learn_one(dict(x))  # type: ignore[no-untyped-call]

    def score_one(self, x: Mapping[str, float]) -> float:
        """Mean of the ``top_k`` largest squared standard scores (0 until the scaler has seen data)."""
        top = self._top_squares(x)
        return float(sum(square for square, _ in top) / max(len(top), 1))

    def explain(self, x: Mapping[str, float], top: int = 3) -> list[tuple[str, float]]:
        """The ``top`` features with the largest absolute standard score, as (name, z)."""
        ranked = sorted(self._z(x).items(), key=lambda item: abs(item[1]), reverse=True)[:top]
        return [(name, round(float(value), 3)) for name, value in ranked]
