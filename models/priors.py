"""Kind priors: how a channel's scores of a new machine are distributed in its first days, learned from the fleet.

A new asset has no history to calibrate its raw scores against: without a prior it warms up for two days
(``[models] warmup_windows``). The fleet has: every machine of the same kind went through the same first days,
with the same models learning from scratch. A :class:`ChannelPrior` holds, for one channel (``vibration``,
``camera``, ``early``) of one asset kind, the distribution of the channel's smoothed raw score of normal windows
at each age bucket (hours since the asset's first message), pooled over the fleet's machines of that kind. A
new asset of that kind calibrates its scores against it from the end of a short warm-up (``warmup_hours``) until
its own calibrators have learned their own reference (``span_hours``).

Scores are kept in the unit that transfers best between machines of one kind, chosen per channel when the prior
is fitted (:func:`fit_priors`): ``absolute`` (the raw score itself: the vibration detector's squared standard
scores are already relative to the machine) or ``relative`` (divided by the median of the asset's own score in
the second half of its warm-up, its *baseline*: a camera's reconstruction error depends on its scene). The unit
with the smaller spread of the machines' own 99th percentiles wins.

>>> rng = np.random.default_rng(0)
>>> histories = [AssetHistory("pump", {"camera": [(h / 60, scale * rng.lognormal(0, 0.3)) for h in range(2880)]})
...              for scale in (1.0, 3.0, 10.0)]      # three pumps whose cameras see other scenes
>>> priors = fit_priors(histories, warmup_hours=2.0, bucket_hours=(2.0, 12.0))
>>> prior = priors.for_kind("pump")["camera"]
>>> prior.unit, priors.bucket(1.0), priors.bucket(30.0)
('relative', 0, 1)
>>> round(prior.calibrate(3.0, baseline=3.0, bucket=1), 1), prior.calibrate(30.0, baseline=3.0, bucket=1) > 0.9999
(0.5, True)
>>> sorted(priors.kinds), priors.for_kind("motor") is priors.kinds["*"]  # other kinds: the pooled prior
(['*', 'pump'], True)
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from models.bundle import ANY_KIND, Bundle
from models.calibration import QuantileCalibrator

PRIORS_FILE = "priors.json"
QUANTILES_FILE = "priors.npz"
PRIORS_FORMAT = "kind-priors-1"
QUANTILES = 1001
"""Quantiles kept per age bucket (every 0.1 %); the calibrator fits its Pareto tail to the top 5 % of them."""
MIN_BUCKET_SAMPLES = 200
"""A bucket with fewer normal windows takes the previous bucket's distribution."""
MIN_BASELINE_SAMPLES = 10
"""An asset whose channel has fewer windows in the second half of its warm-up has no baseline for it."""

Unit = Literal["absolute", "relative"]


class ChannelPrior:
    """One channel's prior for one kind: per age bucket, the quantiles of its normal scores in ``unit``."""

    def __init__(self, unit: Unit, quantiles: np.ndarray, samples: Sequence[int]) -> None:
        self.unit = unit
        self.quantiles = np.asarray(quantiles, dtype=np.float64)
        self.samples = tuple(int(n) for n in samples)
        self._calibrators = []
        for row in self.quantiles:
            calibrator = QuantileCalibrator(window=len(row), min_samples=1)
            for value in row:
                calibrator.learn_one(float(value))
            self._calibrators.append(calibrator)

    def calibrate(self, value: float, baseline: float | None, bucket: int) -> float | None:
        """The value calibrated against the bucket's distribution; ``None`` when it needs a baseline it has not."""
        if self.unit == "relative":
            if baseline is None or baseline <= 0.0:
                return None
            value = value / baseline
        return self._calibrators[bucket].score_one(value)


@dataclass(frozen=True)
class FleetPriors:
    """The priors of every kind (and :data:`ANY_KIND`), with the warm-up and age buckets they were fitted for."""

    warmup_hours: float
    bucket_hours: tuple[float, ...]
    """Lower edges of the age buckets in hours; the first is ``warmup_hours``, the last bucket is open."""
    span_hours: float
    """The age up to which the prior is used (its own calibrators take over once they are warm after it)."""
    kinds: dict[str, dict[str, ChannelPrior]] = field(default_factory=dict)

    def bucket(self, age_hours: float) -> int:
        """The age bucket of an asset ``age_hours`` old (the first during the warm-up)."""
        return max(bisect_right(self.bucket_hours, age_hours) - 1, 0)

    def for_kind(self, kind: str | None) -> dict[str, ChannelPrior] | None:
        """The channel priors of ``kind``; the pooled ones when it has none; ``None`` when there are none."""
        return self.kinds.get(kind or ANY_KIND) or self.kinds.get(ANY_KIND)

    def parts(self) -> dict[str, Any]:
        """The bundle files that hold these priors."""
        index: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for kind, channels in sorted(self.kinds.items()):
            for channel, prior in sorted(channels.items()):
                key = f"q{len(arrays)}"
                arrays[key] = prior.quantiles
                index.setdefault(kind, {})[channel] = {"unit": prior.unit, "quantiles": key,
                                                       "samples": list(prior.samples)}
        meta = {"format": PRIORS_FORMAT, "warmup_hours": self.warmup_hours, "bucket_hours": list(self.bucket_hours),
                "span_hours": self.span_hours, "kinds": index}
        return {PRIORS_FILE: meta, QUANTILES_FILE: arrays}

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> FleetPriors | None:
        """The bundle's priors, ``None`` when it has none; a malformed file is a :class:`BundleError` naming it."""
        if not bundle.has(PRIORS_FILE):
            return None
        meta = bundle.json(PRIORS_FILE)
        arrays = bundle.arrays(QUANTILES_FILE)
        try:
            if meta["format"] != PRIORS_FORMAT:
                raise ValueError(f"format {meta['format']!r}, this version reads {PRIORS_FORMAT!r}")
            buckets = tuple(float(edge) for edge in meta["bucket_hours"])
            kinds = {kind: {channel: _channel_prior(entry, arrays, len(buckets)) for channel, entry in channels.items()}
                     for kind, channels in meta["kinds"].items()}
            return cls(float(meta["warmup_hours"]), buckets, float(meta["span_hours"]), kinds)
        except (KeyError, TypeError, ValueError) as exc:
            raise bundle._error(f"{PRIORS_FILE}: {exc}") from None


def _channel_prior(entry: dict[str, Any], arrays: dict[str, np.ndarray], buckets: int) -> ChannelPrior:
    if entry["unit"] not in ("absolute", "relative"):
        raise ValueError(f"unit {entry['unit']!r} is neither absolute nor relative")
    quantiles = arrays.get(entry["quantiles"])
    if quantiles is None or quantiles.ndim != 2 or quantiles.shape[0] != buckets or not np.isfinite(quantiles).all():
        raise ValueError(f"{QUANTILES_FILE}: {entry['quantiles']} is not {buckets} finite rows of quantiles")
    return ChannelPrior(entry["unit"], quantiles, entry["samples"])


@dataclass
class AssetHistory:
    """One training asset's kind and, per channel, the (age in hours, smoothed raw score) of its normal windows."""

    kind: str
    values: dict[str, list[tuple[float, float]]]


def baseline_of(values: Iterable[tuple[float, float]], warmup_hours: float) -> float | None:
    """The median score in the second half of the warm-up, ``None`` with too few windows there or not above 0.

    >>> baseline_of([(0.2, 9.0), (1.2, 2.0), (1.5, 3.0)] + [(1.9, 4.0)] * 8, warmup_hours=2.0)
    4.0
    """
    return baseline([value for age, value in values if in_baseline(age, warmup_hours)])


def in_baseline(age_hours: float, warmup_hours: float) -> bool:
    """Whether a window of an asset ``age_hours`` old counts towards its baseline: the warm-up's second half."""
    return warmup_hours / 2 <= age_hours < warmup_hours


def baseline(values: Sequence[float]) -> float | None:
    """The median of an asset's scores in the second half of its warm-up; ``None`` when it cannot serve as one."""
    if len(values) < MIN_BASELINE_SAMPLES:
        return None
    median = float(np.median(values))
    return median if median > 0.0 else None


def fit_priors(histories: Iterable[AssetHistory], warmup_hours: float, bucket_hours: Sequence[float],
               span_hours: float = 48.0) -> FleetPriors:
    """Fit every kind's (and the pooled) channel priors from the training assets' first days."""
    if not bucket_hours or bucket_hours[0] != warmup_hours or list(bucket_hours) != sorted(set(bucket_hours)):
        raise ValueError("bucket_hours must rise and start at warmup_hours")
    histories = list(histories)
    groups: dict[str, list[AssetHistory]] = {ANY_KIND: histories}
    for history in histories:
        if history.kind != ANY_KIND:
            groups.setdefault(history.kind, []).append(history)
    kinds: dict[str, dict[str, ChannelPrior]] = {}
    for kind, members in groups.items():
        channels = sorted({channel for member in members for channel in member.values})
        fitted = {channel: prior for channel in channels
                  if (prior := _fit_channel([m.values.get(channel, []) for m in members], warmup_hours,
                                            tuple(bucket_hours))) is not None}
        if fitted:
            kinds[kind] = fitted
    return FleetPriors(float(warmup_hours), tuple(float(edge) for edge in bucket_hours), float(span_hours), kinds)


def _fit_channel(assets: list[list[tuple[float, float]]], warmup_hours: float,
                 bucket_hours: tuple[float, ...]) -> ChannelPrior | None:
    """The channel's prior in the unit whose per-asset 99th percentiles spread least (log scale)."""
    best: tuple[float, ChannelPrior] | None = None
    for unit in ("absolute", "relative"):
        per_asset: list[list[tuple[float, float]]] = []
        for values in assets:
            baseline = baseline_of(values, warmup_hours) if unit == "relative" else 1.0
            if baseline is not None:
                per_asset.append([(age, value / baseline) for age, value in values if age >= warmup_hours])
        per_asset = [values for values in per_asset if values]
        prior = _bucketed(unit, per_asset, bucket_hours)
        if prior is None:
            continue
        tops = [float(np.quantile([v for _, v in values], 0.99)) for values in per_asset]
        spread = float(np.std(np.log(np.maximum(tops, 1e-12)))) if len(tops) > 1 else math.inf
        if best is None or spread < best[0]:
            best = (spread, prior)
    return None if best is None else best[1]


def _bucketed(unit: Unit, per_asset: list[list[tuple[float, float]]],
              bucket_hours: tuple[float, ...]) -> ChannelPrior | None:
    rows: list[np.ndarray] = []
    samples: list[int] = []
    levels = np.linspace(0.0, 1.0, QUANTILES)
    for i, low in enumerate(bucket_hours):
        high = bucket_hours[i + 1] if i + 1 < len(bucket_hours) else math.inf
        pooled = [value for values in per_asset for age, value in values if low <= age < high]
        if len(pooled) >= MIN_BUCKET_SAMPLES:
            rows.append(np.quantile(np.asarray(pooled), levels))
        elif rows:
            rows.append(rows[-1])
        else:
            return None
        samples.append(len(pooled))
    return ChannelPrior(unit, np.stack(rows), samples)
