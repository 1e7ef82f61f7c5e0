"""A new asset calibrated against its kind's prior (:mod:`models.priors`) until its own calibrators take over.

With a bundle that holds priors, an asset the pipeline has not seen before warms up for the prior's
``warmup_hours`` only (everything learns, nothing alerts), measuring its *baseline* per channel (the median
score of the warm-up's second half). From then on each channel the prior covers is calibrated against the
distribution of the fleet's machines of the same kind at the same age, in the prior's unit, and joins fusion at
once; after ``span_hours`` a channel whose own calibrator is warm uses its own (learned, as without a bundle,
from the values the prior judged normal, a day late). A channel the prior does not cover behaves as without a
bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fusewatch.core.timeutil import NS_PER_HOUR
from models.priors import FleetPriors, baseline, in_baseline
from streams.stages.channel import Channel


@dataclass
class AssetPrior:
    """One asset's use of its kind's prior: when it was first seen, and its baselines (fixed after the warm-up)."""

    kind: str | None
    first_ns: int
    warming: dict[str, list[float]] = field(default_factory=dict)
    baselines: dict[str, float] | None = None


class PriorCalibration:
    """The fleet's priors, applied to each new asset's channels (the per-asset part lives in :class:`AssetPrior`)."""

    def __init__(self, priors: FleetPriors) -> None:
        self.priors = priors

    def start(self, kind: str | None, first_ns: int) -> AssetPrior | None:
        """The prior state of a new asset of ``kind`` first seen at ``first_ns``; ``None`` when no prior covers it."""
        return AssetPrior(kind, first_ns) if self.priors.for_kind(kind) else None

    def age_hours(self, asset: AssetPrior, end_ns: int) -> float:
        return (end_ns - asset.first_ns) / NS_PER_HOUR

    def warming_up(self, asset: AssetPrior, end_ns: int) -> bool:
        """Whether the asset is still in the prior's (short) warm-up."""
        return self.age_hours(asset, end_ns) < self.priors.warmup_hours

    def learn_gate(self, asset: AssetPrior, end_ns: int, gate: float, calibration_gate: float) -> float:
        """The stages' learn gate: within the prior's span the looser ``calibration_gate``, as the fleet's machines
        whose scores the prior holds learned every normal window (a gate the prior's tail sets too often would
        freeze a young model in its first hours' state); after it ``gate``."""
        return calibration_gate if self.age_hours(asset, end_ns) < self.priors.span_hours else gate

    def apply(self, asset: AssetPrior, end_ns: int, smoothed: dict[str, float], calibrated: dict[str, float],
              warm: dict[str, bool], channels: dict[str, Channel]) -> None:
        """Replace ``calibrated`` and ``warm`` of the channels the prior calibrates in this window."""
        age = self.age_hours(asset, end_ns)
        warmup = self.priors.warmup_hours
        if age < warmup:
            if in_baseline(age, warmup):
                for channel, value in smoothed.items():
                    asset.warming.setdefault(channel, []).append(value)
            return
        if asset.baselines is None:
            asset.baselines = {channel: level for channel, values in asset.warming.items()
                               if (level := baseline(values)) is not None}
            asset.warming = {}
        priors = self.priors.for_kind(asset.kind) or {}
        bucket = self.priors.bucket(age)
        for channel, value in smoothed.items():
            prior = priors.get(channel)
            own = channels[channel]
            if prior is None or not own.learns or (age >= self.priors.span_hours and own.warm):
                continue
            level = prior.calibrate(value, asset.baselines.get(channel), bucket)
            if level is not None:
                calibrated[channel], warm[channel] = level, True
