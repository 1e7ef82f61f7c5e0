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

The ``learned`` method scores only with a gate from a bundle (``fusion.safetensors``, written by ``fusewatch
train``); without one it is left out of :meth:`FusionStage.available` and cannot be the configured method. It
sees each window's context: the asset's kind and the hours since its last repair entry (or its first window),
which the stage keeps per asset from the windows and log entries it observes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fusewatch.core.errors import BundleError, ConfigError
from fusewatch.core.events import MODALITIES
from fusewatch.core.timeutil import NS_PER_HOUR
from models.bundle import Bundle
from models.fusion import (
    FusionContext,
    FusionResult,
    GateParams,
    LearnedFusion,
    OverModalities,
    StackingFusion,
    build_methods,
    fusion_names,
    single,
)
from models.fusion.learned import FUSION_META, FUSION_TENSORS
from models.labels import FailureLabeler
from streams.model_config import ModelConfig

__all__ = ["METHODS", "MODALITIES", "FusionStage", "RepairClock"]

#: The evaluation's rows: each modality alone, then every registered fusion method.
METHODS: tuple[str, ...] = (*MODALITIES, *fusion_names())


class RepairClock:
    """Per asset, the time of its last repair entry, or of its first window: the learned fusion's context.

    >>> clock = RepairClock()
    >>> clock.observe("pump-01", 0, [])
    >>> clock.observe("pump-01", 10 * NS_PER_HOUR, [(9 * NS_PER_HOUR, "repair")])
    >>> clock.hours("pump-01", 12 * NS_PER_HOUR), clock.hours("pump-02", 12 * NS_PER_HOUR)
    (3.0, 0.0)
    """

    def __init__(self) -> None:
        self.since: dict[str, int] = {}

    def observe(self, asset_id: str, end: int, log_entries: Iterable[tuple[int, str]]) -> None:
        """Note the asset's window ending at ``end`` and the log entries it brought."""
        since = self.since.setdefault(asset_id, end)
        for ts, kind in log_entries:
            if kind == "repair" and ts > since:
                self.since[asset_id] = since = ts

    def hours(self, asset_id: str, end: int) -> float:
        """Hours from the asset's last repair (or first window) to ``end``; 0 for an asset not seen yet."""
        return max(0.0, (end - self.since.get(asset_id, end)) / NS_PER_HOUR)


class FusionStage:
    """Every registered fusion method, built from the ``[models]`` settings; stacking learns from the log's labels."""

    def __init__(self, config: ModelConfig, bundle: Bundle | None = None, gate: GateParams | None = None) -> None:
        """``gate``: the learned method's gate (default: the bundle's, if it has one)."""
        self.config = config
        self.methods = build_methods(config)
        gate = gate if gate is not None or bundle is None else learned_gate(bundle)
        if gate is not None:
            self.methods["learned"] = LearnedFusion(gate, config.fusion_decades)
        if config.fusion not in self.available():
            where = f"bundle {bundle.path} has none" if bundle is not None else "no [models] bundle is set"
            raise ConfigError(f"[models] fusion = \"{config.fusion}\": it needs a bundle with a learned fusion "
                              f"({FUSION_TENSORS}, from `fusewatch train --fusion-windows`), and {where}")
        self.labeler = FailureLabeler(horizon=int(config.label_horizon_hours * NS_PER_HOUR))
        self.labels_learned = {"positive": 0, "negative": 0}
        self.clock = RepairClock()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Also reads the state of checkpoints written before the learned method (no ``clock``)."""
        self.__dict__.update({"clock": RepairClock(), **state})
        if "learned" not in self.methods:
            self.methods["learned"] = LearnedFusion(None, self.config.fusion_decades)

    def available(self) -> tuple[str, ...]:
        """The rows of :data:`METHODS` this stage can score: all but ``learned`` unless a bundle gave its gate."""
        learned = self.methods["learned"]
        return tuple(m for m in METHODS if m != "learned" or (isinstance(learned, LearnedFusion) and learned.trained))

    def context(self, asset_id: str, end: int, kind: str | None) -> FusionContext:
        """The context of the asset's window ending at ``end``: its kind and the hours since its last repair."""
        return FusionContext(kind, self.clock.hours(asset_id, end))

    @property
    def stacking(self) -> StackingFusion:
        """The stacking fuser (the evaluation reports the weights it learned)."""
        method = self.methods["stacking"]
        if not (isinstance(method, OverModalities) and isinstance(method.fuser, StackingFusion)):
            raise TypeError("the registered stacking method is not a StackingFusion")
        return method.fuser

    def fuse(self, x: Mapping[str, float], shares: Mapping[str, float],
             context: FusionContext | None = None) -> FusionResult:
        """The configured method's result for one window (``context``: :meth:`context`)."""
        return self.methods[self.config.fusion].fuse(x, shares, context)

    def all_methods(self, x: Mapping[str, float], shares: Mapping[str, float],
                    methods: Iterable[str] | None = None, context: FusionContext | None = None) -> dict[str, float]:
        """Each row's fused score for one window (``methods``: default every one of :meth:`available`, in that
        order); stacking learns in :meth:`observe` whether it is scored or not."""
        decades = self.config.fusion_decades
        return {m: single(x, m, decades) if m in MODALITIES else self.methods[m].fuse(x, shares, context).fused
                for m in (self.available() if methods is None else methods)}

    def observe(self, asset_id: str, end: int, x: Mapping[str, float], log_entries: Iterable[tuple[int, str]]) -> None:
        """Feed the labeler one window and the log entries it brought; the methods learn the labels that result;
        a repair entry restarts the asset's hours since repair."""
        log_entries = list(log_entries)
        self.clock.observe(asset_id, end, log_entries)
        labelled = []
        for ts, kind in log_entries:
            labelled += self.labeler.add_log(asset_id, ts, kind)
        labelled += self.labeler.add_window(asset_id, end, {m: c for m, c in x.items() if m in MODALITIES})
        for window in labelled:
            for method in self.methods.values():
                method.learn(window.x, window.label)
            self.labels_learned["positive" if window.label else "negative"] += 1


def learned_gate(bundle: Bundle) -> GateParams | None:
    """The learned fusion's gate in ``bundle`` (``None`` if it has none); a gate that does not fit is a
    :class:`~fusewatch.core.errors.BundleError`."""
    if not bundle.has(FUSION_TENSORS):
        return None
    try:
        return GateParams.from_parts(bundle.tensors(FUSION_TENSORS), bundle.json(FUSION_META))
    except ValueError as exc:
        raise BundleError(bundle.path, str(exc)) from None
