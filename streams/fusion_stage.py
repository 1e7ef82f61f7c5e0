"""The fusion stage: every fusion method over one stream of calibrated windows, and the label feedback loop.

Input per window: the calibrated scores of the present, warm channels — the modalities ``vibration``,
``camera``, ``logs`` and the ``early`` channel (the early-fusion detector over all modalities' features,
calibrated like the others) — plus the early detector's attribution to modalities, and the kinds of the log
entries first seen in this window. The stage returns the configured method's :class:`FusionResult`;
:meth:`FusionStage.all_methods` gives every method side by side for evaluation, from the same learned state.

The methods are those of the registry (:mod:`models.fusion.registry`), built once per stage; ``hybrid`` blends
``early`` with the very instance of the configured ``hybrid_late`` method. The evaluation's rows
(:data:`METHODS`) are the single modalities alone (``vibration``, ``camera``, ``logs``: baselines, not fusion
methods) and then every registered method. Stacking is trained from :class:`~models.labels.FailureLabeler`
over every asset this stage sees: a failure on one machine teaches how failures of the others announce
themselves. The stage therefore learns per pipeline — a worker process in the embedded runner, an input
partition in the Kafka worker — not per asset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fusewatch.core.events import MODALITIES
from fusewatch.core.timeutil import NS_PER_HOUR
from models.fusion import FusionResult, OverModalities, StackingFusion, build_methods, fusion_names, single
from models.labels import FailureLabeler
from streams.model_config import ModelConfig

__all__ = ["METHODS", "MODALITIES", "FusionStage"]

#: The evaluation's rows: each modality alone, then every registered fusion method.
METHODS: tuple[str, ...] = (*MODALITIES, *fusion_names())


class FusionStage:
    """Every registered fusion method, built from the ``[models]`` settings; stacking learns from the log's labels."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.methods = build_methods(config)
        self.labeler = FailureLabeler(horizon=int(config.label_horizon_hours * NS_PER_HOUR))
        self.labels_learned = {"positive": 0, "negative": 0}

    @property
    def stacking(self) -> StackingFusion:
        """The stacking fuser (the evaluation reports the weights it learned)."""
        method = self.methods["stacking"]
        if not (isinstance(method, OverModalities) and isinstance(method.fuser, StackingFusion)):
            raise TypeError("the registered stacking method is not a StackingFusion")
        return method.fuser

    def fuse(self, x: Mapping[str, float], shares: Mapping[str, float]) -> FusionResult:
        """The configured method's result for one window."""
        return self.methods[self.config.fusion].fuse(x, shares)

    def all_methods(self, x: Mapping[str, float], shares: Mapping[str, float],
                    methods: Iterable[str] = METHODS) -> dict[str, float]:
        """Each row's fused score for one window (``methods``: default every one of :data:`METHODS`, in that
        order); stacking learns in :meth:`observe` whether it is scored or not."""
        decades = self.config.fusion_decades
        return {m: single(x, m, decades) if m in MODALITIES else self.methods[m].fuse(x, shares).fused for m in methods}

    def observe(self, asset_id: str, end: int, x: Mapping[str, float], log_entries: Iterable[tuple[int, str]]) -> None:
        """Feed the labeler one window and the log entries it brought; the methods learn the labels that result."""
        labelled = []
        for ts, kind in log_entries:
            labelled += self.labeler.add_log(asset_id, ts, kind)
        labelled += self.labeler.add_window(asset_id, end, {m: c for m, c in x.items() if m in MODALITIES})
        for window in labelled:
            for method in self.methods.values():
                method.learn(window.x, window.label)
            self.labels_learned["positive" if window.label else "negative"] += 1
