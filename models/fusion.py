"""Late fusion of calibrated per-modality scores into one anomaly score with contributions.

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

Contributions always sum to the fused score; each modality's share is proportional to its evidence.

>>> fusion = LateFusion("fisher")
>>> result = fusion.fuse({"vibration": 0.9995, "camera": 0.5}, {"vibration": True, "camera": True, "logs": False})
>>> round(result.fused, 4), result.leading
(0.9977, 'vibration')
>>> round(sum(result.contributions.values()), 10) == round(result.fused, 10)
True
>>> result.contributions["logs"]
0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

FusionMethod = Literal["fisher", "weighted", "noisy_or"]
_P_FLOOR = 1e-12


@dataclass(frozen=True)
class FusionResult:
    """A fused score in [0, 1], the per-modality contributions that sum to it, and the leading modality."""

    fused: float
    contributions: dict[str, float]
    leading: str | None


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
    """Combine calibrated modality scores; see the module docstring for the methods."""

    def __init__(
        self,
        method: FusionMethod = "fisher",
        weights: Mapping[str, float] | None = None,
        sharpness: float = 8.0,
    ) -> None:
        if method not in ("fisher", "weighted", "noisy_or"):
            raise ValueError(f"unknown fusion method {method!r}")
        self.method = method
        self.weights = dict(weights or {})
        self.sharpness = sharpness

    def fuse(self, calibrated: Mapping[str, float], present: Mapping[str, bool]) -> FusionResult:
        """Fuse the calibrated scores of the present modalities."""
        active = {m: min(max(float(c), 0.0), 1.0) for m, c in calibrated.items() if present.get(m, False)}
        contributions = {m: 0.0 for m in present}
        if not active:
            return FusionResult(0.0, contributions, None)
        if self.method == "fisher":
            evidence = {m: -math.log(max(1.0 - c, _P_FLOOR)) for m, c in active.items()}
            fused = 1.0 - chi2_survival_even(2.0 * sum(evidence.values()), 2 * len(active))
        elif self.method == "weighted":
            weights = {m: self.weights.get(m, 1.0) for m in active}
            total = sum(weights.values()) or 1.0
            evidence = {m: weights[m] * c / total for m, c in active.items()}
            fused = sum(evidence.values())
        else:
            evidence = {m: -math.log(max(1.0 - c**self.sharpness, _P_FLOOR)) for m, c in active.items()}
            fused = 1.0 - math.exp(-sum(evidence.values()))
        fused = min(max(fused, 0.0), 1.0)
        total_evidence = sum(evidence.values())
        for modality, value in evidence.items():
            share = value / total_evidence if total_evidence > 0 else 1.0 / len(evidence)
            contributions[modality] = fused * share
        leading = max(evidence, key=lambda m: evidence[m])
        return FusionResult(fused, contributions, leading)
