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

The combined probability ``q`` is reported on a **surprise scale**, ``fused = min(1, -log10(1 - q) / decades)``:
0 is unremarkable, 0.3 a one-in-a-thousand window under normal operation, 0.6 one in a million, 1 one in
``10**decades``. Operators read it like a gauge, and thresholds keep their meaning as a false-alarm rate.
Contributions always sum to the fused score; each modality's share is proportional to its evidence.

>>> fusion = LateFusion("fisher")
>>> result = fusion.fuse({"vibration": 0.9995, "camera": 0.5}, {"vibration": True, "camera": True, "logs": False})
>>> round(result.fused, 3), round(result.probability, 4), result.leading
(0.263, 0.9977, 'vibration')
>>> round(sum(result.contributions.values()), 10) == round(result.fused, 10)
True
>>> result.contributions["logs"]
0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

FusionMethod = Literal["fisher", "weighted", "noisy_or"]
_P_FLOOR = 1e-12


@dataclass(frozen=True)
class FusionResult:
    """A fused score in [0, 1] (surprise scale), the contributions that sum to it, and the leading modality.

    ``probability`` is the combined score before the surprise scale (``1 - p`` for Fisher).
    """

    fused: float
    contributions: dict[str, float]
    leading: str | None
    probability: float


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
        decades: float = 10.0,
    ) -> None:
        if method not in ("fisher", "weighted", "noisy_or"):
            raise ValueError(f"unknown fusion method {method!r}")
        self.method = method
        self.weights = dict(weights or {})
        self.sharpness = sharpness
        self.decades = decades

    def fuse(self, calibrated: Mapping[Any, float], present: Mapping[Any, bool]) -> FusionResult:
        """Fuse the calibrated scores of the present modalities."""
        active = {m: min(max(float(c), 0.0), 1.0) for m, c in calibrated.items() if present.get(m, False)}
        contributions = {m: 0.0 for m in present}
        if not active:
            return FusionResult(0.0, contributions, None, 0.0)
        if self.method == "fisher":
            evidence = {m: -math.log(max(1.0 - c, _P_FLOOR)) for m, c in active.items()}
            p_value = chi2_survival_even(2.0 * sum(evidence.values()), 2 * len(active))
            fused = 1.0 - p_value
        elif self.method == "weighted":
            weights = {m: self.weights.get(m, 1.0) for m in active}
            total = sum(weights.values()) or 1.0
            evidence = {m: weights[m] * c / total for m, c in active.items()}
            fused = sum(evidence.values())
        else:
            evidence = {m: -math.log(max(1.0 - c**self.sharpness, _P_FLOOR)) for m, c in active.items()}
            fused = 1.0 - math.exp(-sum(evidence.values()))
        probability = min(max(fused, 0.0), 1.0)
        if self.method != "fisher":
            p_value = 1.0 - probability
        fused = min(1.0, -math.log10(max(p_value, _P_FLOOR)) / self.decades)
        total_evidence = sum(evidence.values())
        for modality, value in evidence.items():
            share = value / total_evidence if total_evidence > 0 else 1.0 / len(evidence)
            contributions[modality] = fused * share
        leading = max(evidence, key=lambda m: evidence[m])
        return FusionResult(fused, contributions, leading, probability)

