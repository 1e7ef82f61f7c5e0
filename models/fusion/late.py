"""Late fusion of calibrated per-modality scores into one anomaly score with contributions: ``fisher``,
``weighted`` and ``noisy_or``.

Each modality arrives calibrated to (0, 1), uniform under normal operation, so ``p = 1 - calibrated`` is a
p-value. Missing modalities are left out through the presence mask, never treated as zero.

Methods
-------
``fisher`` (default)
    Fisher's combination: ``T = -2 * sum(log p)`` follows a chi-squared law with ``2k`` degrees of freedom
    under normal operation (k present modalities), so the fused score ``1 - P(chi2 > T)`` is itself
    calibrated: a threshold of 0.99 means one normal window in a hundred.
``weighted``
    The weighted mean of calibrated scores.
``noisy_or``
    ``1 - prod(1 - c**sharpness)``: any strongly anomalous modality drives the score up.

The combined probability ``q`` is reported on the **surprise scale** (:mod:`models.fusion.scale`),
``fused = min(1, -log10(1 - q) / decades)``: 0.3 is a one-in-a-thousand window under normal operation.
Contributions always sum to the fused score; each modality's share is proportional to its evidence.

>>> fusion = LateFusion("fisher")
>>> result = fusion.fuse_one({"vibration": 0.9995, "camera": 0.5})  # logs missing: left out
>>> round(result.fused, 3), round(result.probability, 4), result.leading
(0.263, 0.9977, 'vibration')
>>> round(sum(result.contributions.values()), 10) == round(result.fused, 10)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from models.base import FusionResult
from models.fusion.scale import P_FLOOR, spread, surprise

LateMethod = Literal["fisher", "weighted", "noisy_or"]


def chi2_survival_even(statistic: float, dof: int) -> float:
    """``P(chi2_dof > statistic)`` for an even number of degrees of freedom (closed form).

    >>> round(chi2_survival_even(5.991, 2), 3)
    0.05
    """
    if dof <= 0 or dof % 2:
        raise ValueError("dof must be a positive even number")
    half = statistic / 2.0
    term, total = 1.0, 1.0
    for i in range(1, dof // 2):
        term *= half / i
        total += term
    return min(1.0, math.exp(-half) * total)


class LateFusion:
    """Combine calibrated modality scores; see the module docstring for the methods.

    The input ``x`` maps each *present and warm* modality to its calibrated score; a missing modality is simply
    absent (the presence mask), so it neither raises nor lowers the fused score. Late fusion learns nothing:
    ``learn_one`` exists so every fuser follows the same protocol.
    """

    def __init__(
        self,
        method: LateMethod = "fisher",
        weights: Mapping[str, float] | None = None,
        sharpness: float = 8.0,
        decades: float = 10.0,
    ) -> None:
        if method not in ("fisher", "weighted", "noisy_or"):
            raise ValueError(f"unknown fusion method {method!r}")
        self.method = method
        self.weights = dict(weights or {})
        self.sharpness = sharpness
        self.decades = decades

    def learn_one(self, x: Mapping[str, float], y: bool | None = None) -> None:
        """Nothing to learn (the protocol's no-op)."""

    def score_one(self, x: Mapping[str, float]) -> float:
        """The fused score of ``x``."""
        return self.fuse_one(x).fused

    def fuse_one(self, x: Mapping[str, float]) -> FusionResult:
        """Fuse the calibrated scores of the present modalities, with contributions and the leading one."""
        active = {m: min(max(float(c), 0.0), 1.0) for m, c in x.items()}
        if not active:
            return FusionResult(0.0, {}, None, 0.0)
        if self.method == "fisher":
            evidence = {m: -math.log(max(1.0 - c, P_FLOOR)) for m, c in active.items()}
            p_value = chi2_survival_even(2.0 * sum(evidence.values()), 2 * len(active))
        elif self.method == "weighted":
            weights = {m: self.weights.get(m, 1.0) for m in active}
            total = sum(weights.values()) or 1.0
            evidence = {m: weights[m] * c / total for m, c in active.items()}
            p_value = 1.0 - min(max(sum(evidence.values()), 0.0), 1.0)
        else:
            evidence = {m: -math.log(max(1.0 - c**self.sharpness, P_FLOOR)) for m, c in active.items()}
            p_value = math.exp(-sum(evidence.values()))
        fused = surprise(p_value, self.decades)
        leading = max(evidence, key=lambda m: evidence[m])
        return FusionResult(fused, spread(fused, evidence), leading, 1.0 - p_value)
