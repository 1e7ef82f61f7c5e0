"""The surprise scale every fusion method reports on, and how a fused score is split into contributions.

A combined probability ``q`` (or a p-value ``p = 1 - q``) is shown as ``min(1, -log10(p) / decades)``: 0 is
unremarkable, 0.3 a one-in-a-thousand window under normal operation, 0.6 one in a million, 1 one in
``10**decades``. Operators read it like a gauge, and thresholds keep their meaning as a false-alarm rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: The smallest p-value the scale distinguishes (a calibrated score of 1 is not infinitely surprising).
P_FLOOR = 1e-12


def surprise(p_value: float, decades: float = 10.0) -> float:
    """A p-value on the surprise scale, ``min(1, -log10(p) / decades)``.

    >>> surprise(1e-3), surprise(1.0), surprise(0.0)
    (0.3, 0.0, 1.0)
    """
    return min(1.0, max(0.0, -math.log10(max(p_value, P_FLOOR)) / decades))


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
