"""The ``early`` method: the early-fusion detector's calibrated channel, read on the surprise scale.

The detector itself (:class:`models.early.EarlyFusionDetector`: one detector over every modality's features) is
learned per asset in the pipeline and its score is smoothed and calibrated like a modality's, into the
``early`` channel. This method turns that channel into a fused score, and splits it over the modalities by the
detector's ``shares`` (each modality's part of the top squared standard scores).

>>> early = EarlyChannelFusion()
>>> result = early.fuse({"early": 0.999, "vibration": 0.5}, {"vibration": 0.75, "camera": 0.25})
>>> round(result.fused, 3), {m: round(c, 3) for m, c in result.contributions.items()}, result.leading
(0.3, {'vibration': 0.225, 'camera': 0.075}, 'vibration')
>>> early.fuse({"vibration": 0.999}, {}).fused   # no early channel yet (warm-up): nothing to say
0.0
"""

from __future__ import annotations

from collections.abc import Mapping

from models.base import FusionResult
from models.fusion.scale import spread, surprise
from models.fusion.window import FusionContext


class EarlyChannelFusion:
    """The early-fusion channel on the surprise scale, attributed to modalities by the detector's shares."""

    def __init__(self, decades: float = 10.0) -> None:
        self.decades = decades

    def fuse(self, x: Mapping[str, float], shares: Mapping[str, float],
             context: FusionContext | None = None) -> FusionResult:
        """The ``early`` channel's surprise (0 when it is missing), contributions in proportion to ``shares``."""
        calibrated = x.get("early")
        if calibrated is None:
            return FusionResult(0.0, {}, None, 0.0)
        fused = surprise(1.0 - calibrated, self.decades)
        contributions = spread(fused, dict(shares)) if shares else {}
        leading = max(contributions, key=lambda m: contributions[m]) if contributions else None
        return FusionResult(fused, contributions, leading, calibrated)

    def learn(self, x: Mapping[str, float], label: bool) -> None:
        """Nothing: the detector behind the channel learns in the pipeline, per asset, without labels."""
