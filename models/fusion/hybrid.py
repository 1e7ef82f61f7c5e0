"""The ``hybrid`` method: early fusion blended with a late method (``[models] hybrid_late``).

>>> from models.fusion.early_channel import EarlyChannelFusion
>>> from models.fusion.late import LateFusion
>>> from models.fusion.window import OverModalities
>>> hybrid = HybridFusion(EarlyChannelFusion(), OverModalities(LateFusion("fisher")), early_weight=0.5)
>>> round(hybrid.fuse({"early": 0.999, "vibration": 0.999999}, {"vibration": 1.0}).fused, 3)   # (0.3 + 0.6) / 2
0.45
"""

from __future__ import annotations

from collections.abc import Mapping

from models.base import FusionResult
from models.fusion.window import FusionContext, WindowFusion


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


class HybridFusion:
    """:func:`blend` of two methods of the same stage: the early one and a late one (shared, not copied)."""

    def __init__(self, early: WindowFusion, late: WindowFusion, early_weight: float = 0.5) -> None:
        self.early = early
        self.late = late
        self.early_weight = early_weight

    def fuse(self, x: Mapping[str, float], shares: Mapping[str, float],
             context: FusionContext | None = None) -> FusionResult:
        """The blend of the early and the late method's results for one window."""
        return blend(self.early.fuse(x, shares, context), self.late.fuse(x, shares, context), self.early_weight)

    def learn(self, x: Mapping[str, float], label: bool) -> None:
        """Nothing of its own: its halves are methods of the stage and learn as such (once)."""
