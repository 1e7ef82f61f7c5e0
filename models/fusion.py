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
>>> result = fusion.fuse_one({"vibration": 0.9995, "camera": 0.5})  # logs missing: left out
>>> round(result.fused, 3), round(result.probability, 4), result.leading
(0.263, 0.9977, 'vibration')
>>> round(sum(result.contributions.values()), 10) == round(result.fused, 10)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

LateMethod = Literal["fisher", "weighted", "noisy_or"]
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


def surprise(p_value: float, decades: float = 10.0) -> float:
    """A p-value on the surprise scale, ``min(1, -log10(p) / decades)``.

    >>> surprise(1e-3), surprise(1.0), surprise(0.0)
    (0.3, 0.0, 1.0)
    """
    return min(1.0, max(0.0, -math.log10(max(p_value, _P_FLOOR)) / decades))


def single(x: Mapping[str, float], modality: str, decades: float = 10.0) -> float:
    """One modality alone on the surprise scale (0 when it is missing): the single-modality baseline.

    >>> single({"vibration": 0.999}, "vibration"), single({"vibration": 0.999}, "camera")
    (0.3, 0.0)
    """
    c = x.get(modality)
    return 0.0 if c is None else surprise(1.0 - min(max(float(c), 0.0), 1.0), decades)


def spread(fused: float, evidence: Mapping[str, float]) -> dict[str, float]:
    """Split ``fused`` over modalities in proportion to their (non-negative) evidence; the parts sum to it.

    >>> spread(0.6, {"vibration": 3.0, "camera": 1.0})
    {'vibration': 0.45, 'camera': 0.15}
    """
    total = sum(evidence.values())
    if not evidence:
        return {}
    if total <= 0:
        return {m: fused / len(evidence) for m in evidence}
    return {m: fused * value / total for m, value in evidence.items()}


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
            evidence = {m: -math.log(max(1.0 - c, _P_FLOOR)) for m, c in active.items()}
            p_value = chi2_survival_even(2.0 * sum(evidence.values()), 2 * len(active))
        elif self.method == "weighted":
            weights = {m: self.weights.get(m, 1.0) for m in active}
            total = sum(weights.values()) or 1.0
            evidence = {m: weights[m] * c / total for m, c in active.items()}
            p_value = 1.0 - min(max(sum(evidence.values()), 0.0), 1.0)
        else:
            evidence = {m: -math.log(max(1.0 - c**self.sharpness, _P_FLOOR)) for m, c in active.items()}
            p_value = math.exp(-sum(evidence.values()))
        fused = surprise(p_value, self.decades)
        leading = max(evidence, key=lambda m: evidence[m])
        return FusionResult(fused, spread(fused, evidence), leading, 1.0 - p_value)


def blend(early: FusionResult, late: FusionResult, early_weight: float = 0.5) -> FusionResult:
    """Hybrid fusion: the weighted mean of an early- and a late-fusion result, contributions blended alike.

    >>> e = FusionResult(0.4, {"vibration": 0.4}, "vibration", 0.4)
    >>> l = FusionResult(0.2, {"vibration": 0.1, "camera": 0.1}, "vibration", 0.2)
    >>> h = blend(e, l)
    >>> round(h.fused, 3), {m: round(c, 3) for m, c in h.contributions.items()}, h.leading
    (0.3, {'vibration': 0.25, 'camera': 0.05}, 'vibration')
    """
    w = min(max(early_weight, 0.0), 1.0)
    contributions: dict[str, float] = {}
    for part, share in ((early, w), (late, 1.0 - w)):
        for modality, value in part.contributions.items():
            contributions[modality] = contributions.get(modality, 0.0) + share * value
    fused = w * early.fused + (1.0 - w) * late.fused
    leading = max(contributions, key=lambda m: contributions[m]) if contributions else None
    return FusionResult(fused, contributions, leading, w * early.probability + (1.0 - w) * late.probability)
