"""Early fusion: the features of every present modality, concatenated, scored by one online detector.

Each modality contributes its features under a prefix (``vibration.kurtosis``, ``camera.error``,
``logs.evidence``); :class:`EarlyFusionDetector` scores them with the rule that works for vibration alone
(:class:`~models.deviation.DeviationDetector`: the mean of the largest squared standard scores), now across
modalities, so a fault that
moves a few features of *different* modalities at once adds up in one score. ``shares`` attributes a score to
the modalities whose features drove it. Missing modalities simply have no features in that window.

>>> detector = EarlyFusionDetector(top_k=2)
>>> for i in range(200):
...     detector.learn_one({"vibration.kurtosis": 3.0 + 0.01 * (i % 7), "camera.error": 1.0 + 0.02 * (i % 5)})
>>> x = {"vibration.kurtosis": 3.5, "camera.error": 1.04}
>>> detector.score_one(x) > 10, max(detector.shares(x).items(), key=lambda kv: kv[1])[0]
(True, 'vibration')
>>> early_features({"kurtosis": 3.1, "rms": 0.9}, camera_raw=2.0, log_evidence=None)
{'vibration.kurtosis': 3.1, 'camera.error': 0.693...}
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from models.deviation import DeviationDetector

#: Vibration features that follow the operating load (not carried by the messages): kept out of early fusion.
LOAD_FEATURES = frozenset({"rms", "peak"})


def early_features(
    vibration: Mapping[str, float] | None, camera_raw: float | None, log_evidence: float | None
) -> dict[str, float]:
    """The concatenated feature vector of one window (only the present modalities' features).

    The camera's reconstruction error enters as its logarithm (it spans decades); the log evidence as it is,
    a probability: most windows carry none, so its log-odds would turn the faintest routine note (evidence
    0.01 against a usual 0) into a deviation of hundreds of standard deviations for as long as the note stays
    in the log horizon.
    """
    x: dict[str, float] = {}
    for name, value in (vibration or {}).items():
        if name not in LOAD_FEATURES:
            x[f"vibration.{name}"] = float(value)
    if camera_raw is not None:
        x["camera.error"] = math.log(max(float(camera_raw), 1e-9))
    if log_evidence is not None:
        x["logs.evidence"] = float(log_evidence)
    return x


class EarlyFusionDetector(DeviationDetector):
    """One online detector over the concatenated, prefixed features of all present modalities.

    Parameters
    ----------
    top_k
        The score is the mean of this many largest squared standard scores.
    min_std
        Features whose running standard deviation is below this score zero (a constant so far).
    std_floor
        Deviations are counted in units of at least this (see :class:`~models.deviation.DeviationDetector`):
        the log evidence is zero in most windows, and without a floor the first faint routine note would count
        as hundreds of standard deviations and pin early fusion at 1 for as long as it stays in the horizon.
    """

    def __init__(self, top_k: int = 3, min_std: float = 1e-6, std_floor: float = 0.05) -> None:
        super().__init__(top_k=top_k, min_std=min_std, std_floor=std_floor)

    def shares(self, x: Mapping[str, float]) -> dict[str, float]:
        """Each modality's share of the score (its features' part of the top squared standard scores)."""
        return self.score_and_shares(x)[1]

    def score_and_shares(self, x: Mapping[str, float]) -> tuple[float, dict[str, float]]:
        """:meth:`score_one` and :meth:`shares` of one window at the cost of one."""
        top = self._top_squares(x)
        total = sum(square for square, _ in top)
        shares: dict[str, float] = {}
        for square, name in top:
            modality = name.split(".", 1)[0]
            shares[modality] = shares.get(modality, 0.0) + (square / total if total > 0 else 1.0 / len(top))
        return float(total / max(len(top), 1)), shares
