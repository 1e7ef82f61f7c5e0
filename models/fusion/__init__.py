"""Fusion: the calibrated scores of one window's channels combined into one anomaly score with contributions.

Every method is registered once, in :mod:`models.fusion.registry` (``FUSION_METHODS``: name, description, how
to build it, whether it is late); the configuration, the fusion stage (``streams/fusion_stage.py``), the
evaluation and the tests read that table. The methods:

- :mod:`models.fusion.late` — ``fisher``, ``weighted``, ``noisy_or``: fixed combinations of the modalities'
  p-values (:class:`LateFusion`);
- :mod:`models.fusion.stacking` — ``stacking``: logistic regression learned online from the log's labels;
- :mod:`models.fusion.early_channel` — ``early``: the calibrated score of the early-fusion detector
  (:mod:`models.early`, learned per asset like the other detectors);
- :mod:`models.fusion.hybrid` — ``hybrid``: early fusion blended with a late method;
- :mod:`models.fusion.learned` — ``learned``: a gate over the channels and the asset's context, trained on a
  fleet's failures by ``fusewatch train`` and brought by a bundle.

All report on the surprise scale of :mod:`models.fusion.scale`; :mod:`models.fusion.window` is how the stage
runs them.
"""

from __future__ import annotations

from models.base import FusionResult
from models.fusion.early_channel import EarlyChannelFusion
from models.fusion.hybrid import HybridFusion, blend
from models.fusion.late import LateFusion, LateMethod, chi2_survival_even
from models.fusion.learned import GateParams, LearnedFusion
from models.fusion.registry import (
    FUSION_METHODS,
    FusionMethod,
    FusionName,
    FusionOptions,
    LateName,
    build_methods,
    describe,
    fusion_method,
    fusion_names,
    late_names,
)
from models.fusion.scale import single, spread, surprise
from models.fusion.stacking import StackingFusion
from models.fusion.window import FusionContext, OverModalities, WindowFusion

__all__ = [
    "FUSION_METHODS",
    "EarlyChannelFusion",
    "FusionContext",
    "FusionMethod",
    "FusionName",
    "FusionOptions",
    "FusionResult",
    "GateParams",
    "HybridFusion",
    "LateFusion",
    "LateMethod",
    "LateName",
    "LearnedFusion",
    "OverModalities",
    "StackingFusion",
    "WindowFusion",
    "blend",
    "build_methods",
    "chi2_survival_even",
    "describe",
    "fusion_method",
    "fusion_names",
    "late_names",
    "single",
    "spread",
    "surprise",
]
