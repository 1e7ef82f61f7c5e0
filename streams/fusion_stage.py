"""The fusion stage: every fusion method over one stream of calibrated windows, and the label feedback loop.

Input per window: the calibrated scores of the present, warm channels — the modalities ``vibration``,
``camera``, ``logs`` and the ``early`` channel (the early-fusion detector over all modalities' features,
calibrated like the others) — plus the early detector's attribution to modalities, and the kinds of the log
entries first seen in this window. The stage returns the configured method's :class:`FusionResult`;
:meth:`FusionStage.all_methods` gives every method side by side for evaluation, from the same learned state.

Methods: ``vibration``/``camera``/``logs`` (one modality alone), ``early``, ``late`` (Fisher),
``late_weighted``, ``late_noisy_or``, ``late_stacking`` (learned from log labels) and ``hybrid`` (early blended
with the configured ``hybrid_late`` method). Stacking is trained from :class:`~models.labels.FailureLabeler`
over every asset this stage sees: a failure on one machine teaches how failures of the others announce
themselves. The stage therefore learns per pipeline — a worker process in the embedded runner, an input
partition in the Kafka worker — not per asset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fusewatch.core.timeutil import NS_PER_HOUR
from models.fusion import FusionResult, LateFusion, blend, single, spread, surprise
from models.labels import FailureLabeler
from models.stacking import StackingFusion
from streams.model_config import ModelConfig

MODALITIES = ("vibration", "camera", "logs")
METHODS = ("vibration", "camera", "logs", "early", "late", "late_weighted", "late_noisy_or", "late_stacking",
           "hybrid")


class FusionStage:
    """Every fusion method, the configured one first; stacking learns from the labels of the log."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        decades = config.fusion_decades
        self.late = {name: LateFusion(name, decades=decades) for name in ("fisher", "weighted", "noisy_or")}
        self.stacking = StackingFusion(MODALITIES, threshold_decades=config.stacking_threshold_decades,
                                       decades=decades)
        self.labeler = FailureLabeler(horizon=int(config.label_horizon_hours * NS_PER_HOUR))
        self.labels_learned = {"positive": 0, "negative": 0}

    def _late(self, name: str, x: Mapping[str, float]) -> FusionResult:
        modalities = {m: c for m, c in x.items() if m in MODALITIES}
        if name == "stacking":
            return self.stacking.fuse_one(modalities)
        return self.late[name].fuse_one(modalities)

    def _early(self, x: Mapping[str, float], shares: Mapping[str, float]) -> FusionResult:
        calibrated = x.get("early")
        if calibrated is None:
            return FusionResult(0.0, {}, None, 0.0)
        fused = surprise(1.0 - calibrated, self.config.fusion_decades)
        contributions = spread(fused, dict(shares)) if shares else {}
        leading = max(contributions, key=lambda m: contributions[m]) if contributions else None
        return FusionResult(fused, contributions, leading, calibrated)

    def fuse(self, x: Mapping[str, float], shares: Mapping[str, float]) -> FusionResult:
        """The configured method's result for one window."""
        method = self.config.fusion
        if method == "early":
            return self._early(x, shares)
        if method == "hybrid":
            return blend(self._early(x, shares), self._late(self.config.hybrid_late, x),
                         self.config.hybrid_early_weight)
        return self._late(method, x)

    def all_methods(self, x: Mapping[str, float], shares: Mapping[str, float]) -> dict[str, float]:
        """Every method's fused score for one window (see the module docstring for the names)."""
        early = self._early(x, shares)
        scores = {m: single(x, m, self.config.fusion_decades) for m in MODALITIES}
        scores["early"] = early.fused
        scores["late"] = self._late("fisher", x).fused
        scores["late_weighted"] = self._late("weighted", x).fused
        scores["late_noisy_or"] = self._late("noisy_or", x).fused
        scores["late_stacking"] = self._late("stacking", x).fused
        scores["hybrid"] = blend(early, self._late(self.config.hybrid_late, x), self.config.hybrid_early_weight).fused
        return scores

    def observe(self, asset_id: str, end: int, x: Mapping[str, float], log_entries: Iterable[tuple[int, str]]) -> None:
        """Feed the labeler one window and the log entries it brought; stacking learns the labels that result."""
        labelled = []
        for ts, kind in log_entries:
            labelled += self.labeler.add_log(asset_id, ts, kind)
        labelled += self.labeler.add_window(asset_id, end, {m: c for m, c in x.items() if m in MODALITIES})
        for window in labelled:
            self.stacking.learn_one(window.x, window.label)
            self.labels_learned["positive" if window.label else "negative"] += 1
