"""Every fusion method side by side over one scored run: window-level ROC/PR AUC, lead times, false alarms.

A run's windows (their calibrated channels, the early detector's attribution and the log entries they
brought) are replayed in event-time order through one :class:`~streams.fusion_stage.FusionStage`, which gives
every method's score from the same learned state and lets stacking learn from the log's labels as it goes.
Each method's scores then drive its own :class:`~streams.alerts.AlertPolicy` (the configured thresholds; a
repair closes the alert as in the stream processor), and :func:`method_row` measures them against the labels
(:mod:`fusewatch.evaluation.labels`, :mod:`fusewatch.evaluation.outcomes`):

- **window labels**: a window inside an event is positive; windows between a failure and the restart (the
  machine is down) are left out; every other window is negative. Warm-up windows (NaN scores) are left out.
- **lead time**: failure − the first alert opened inside the event; a missed fault counts 0 h, so the median
  is over every event with a failure, missed ones included.
- **false alarms**: alerts opened outside every event of their asset, per asset and day after warm-up.

``fusewatch evaluate`` measures against the simulator's ground truth (:func:`method_rows`), ``fusewatch
backtest`` against labels from the logs or a file (:func:`method_row` per method).

>>> from fusewatch.core.timeutil import NS_PER_HOUR as H
>>> labels = Labels([LabelledEvent("pump-01", start=52 * H, failure=100 * H, start_known=False, source="log")])
>>> scores = {"pump-01": [(t * H, 0.9 if 52 <= t <= 100 else 0.1) for t in range(0, 120, 4)]}
>>> row = method_row("fisher", scores, {"pump-01": [60 * H, 110 * H]}, labels)
>>> row["roc_auc"], row["lead_time_hours_median"], row["faults_detected"], row["false_alarms"]
(1.0, 40.0, 1, 1)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusewatch.core.events import GroundTruth, Score
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR
from fusewatch.evaluation.labels import LabelledEvent, Labels, event_id, truth_events
from fusewatch.evaluation.metrics import pr_auc, roc_auc
from fusewatch.evaluation.outcomes import alert_outcomes
from models.bundle import load_bundle
from models.fusion import GateParams
from streams.alerts import AlertPolicy, AlertPolicyConfig
from streams.fusion_stage import FusionStage
from streams.model_config import ModelConfig
from streams.pipeline import ScoredWindow


@dataclass(frozen=True)
class WindowRecord:
    """What the method comparison needs of one scored window."""

    asset_id: str
    end: int
    warmup: bool
    x: dict[str, float]
    shares: dict[str, float]
    logs: tuple[tuple[int, str], ...]
    kind: str | None = None  # the asset's kind (records kept before it was recorded have none)


def record_of(scored: ScoredWindow) -> WindowRecord:
    """The compact record of a scored window (features and explanations dropped)."""
    score = scored.score
    return WindowRecord(score.asset_id, score.window_end, score.warmup, scored.fusion_input, scored.early_shares,
                        scored.new_logs, scored.kind)


@dataclass
class MethodSeries:
    """Per asset, the (window end, score) series of one method, plus the alert opening times."""

    scores: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    opened: dict[str, list[int]] = field(default_factory=dict)


def in_order(records: Iterable[WindowRecord]) -> list[WindowRecord]:
    """The records in event-time order, as the fusion stage sees them."""
    return sorted(records, key=lambda r: (r.end, r.asset_id))


class AlertReplay:
    """One method's scores, window by window in event-time order, through its own alert policy (a repair entry
    closes the alert, as in the stream processor)."""

    def __init__(self, alerts: AlertPolicyConfig, method: str) -> None:
        self.method = method
        self.policy = AlertPolicy(alerts, run_id=method)
        self.series = MethodSeries()

    def add(self, record: WindowRecord, value: float) -> None:
        """The method's score of the window of ``record`` (warm-up windows are kept as NaN and never alert)."""
        self.series.scores.setdefault(record.asset_id, []).append(
            (record.end, float("nan") if record.warmup else value))
        self.policy.close_on_repair(record.asset_id, record.end, [kind for _, kind in record.logs])
        score = Score.model_construct(
            asset_id=record.asset_id, window_start=record.end, window_end=record.end, fused=value, calibrated={},
            raw={}, contributions={}, present={}, leading=None, top_features=[], warmup=record.warmup,
            model_version=self.method, run_id=self.method,
        )
        for alert in self.policy.update(score):
            if alert.transition == "opened":
                self.series.opened.setdefault(record.asset_id, []).append(alert.ts)


def replay_methods(
    records: Iterable[WindowRecord], models: ModelConfig, alerts: AlertPolicyConfig,
    methods: Sequence[str] | None = None, gate: GateParams | None = None,
) -> tuple[dict[str, MethodSeries], dict[str, Any]]:
    """Replay the records (any order; sorted here by event time) through ``methods`` (default: every method the
    stage can score, :meth:`FusionStage.available`) and their alert policies. The learned method's gate comes from
    ``gate``, else from the ``[models] bundle``.

    Returns the series per method and what stacking learned: labelled windows (positive / negative), its
    weights per modality and its bias.
    """
    bundle = load_bundle(models.bundle) if models.bundle is not None and gate is None else None
    stage = FusionStage(models, bundle, gate)
    methods = stage.available() if methods is None else tuple(methods)
    followed = {method: AlertReplay(alerts, method) for method in methods}
    for record in in_order(records):
        context = stage.context(record.asset_id, record.end, record.kind)
        scores = stage.all_methods(record.x, record.shares, methods, context)
        stage.observe(record.asset_id, record.end, record.x, record.logs)
        for method, replay in followed.items():
            replay.add(record, scores[method])
    series = {method: replay.series for method, replay in followed.items()}
    stacking = {"labels": dict(stage.labels_learned), "bias": round(stage.stacking.bias, 3),
                "weights": {m: round(w, 3) for m, w in stage.stacking.weights.items()}}
    return series, stacking


def method_row(
    method: str,
    scores: Mapping[str, Sequence[tuple[int, float]]],
    opened: Mapping[str, Sequence[int]],
    labels: Labels,
    event_key: Callable[[LabelledEvent], str] = event_id,
) -> dict[str, Any]:
    """One method's row: ROC AUC, PR AUC, median lead time, false alarms per asset-day, faults found, and the
    lead time of each event with a failure under ``event_key`` (NaN scores are warm-up windows)."""
    values: list[float] = []
    targets: list[bool] = []
    scored_days = asset_days(scores)
    for asset_id, points in scores.items():
        for end, value in points:
            if math.isnan(value):
                continue
            label = labels.window_label(asset_id, end)
            if label is not None:
                targets.append(label)
                values.append(value)
    outcomes, false_alarms = alert_outcomes(labels, opened)
    leads = [o.lead_time_hours or 0.0 for o in outcomes if o.event.failure is not None]
    total_false = sum(false_alarms.values())
    return {
        "method": method,
        "roc_auc": roc_auc(targets, values),
        "pr_auc": pr_auc(targets, values),
        "lead_time_hours_median": statistics.median(leads) if leads else None,
        "false_alarms_per_asset_day": total_false / scored_days if scored_days else None,
        "faults_detected": sum(1 for o in outcomes if o.first_alert is not None),
        "lead_times_hours": {event_key(o.event): o.lead_time_hours for o in outcomes if o.event.failure is not None},
        "faults": len(outcomes),
        "false_alarms": total_false,
        "windows": len(values),
    }


def asset_days(scores: Mapping[str, Sequence[tuple[int, float]]]) -> float:
    """The days scored out of warm-up, summed over assets (each from its first to its last non-NaN score).

    >>> asset_days({"a": [(0, float("nan")), (NS_PER_DAY, 0.1), (3 * NS_PER_DAY, 0.2)], "b": [(0, 0.5)]})
    2.0
    """
    days = 0.0
    for points in scores.values():
        live = [end for end, value in points if not math.isnan(value)]
        if live:
            days += (live[-1] - live[0]) / NS_PER_DAY
    return days


def method_rows(series: Mapping[str, MethodSeries], truths: Sequence[GroundTruth]) -> list[dict[str, Any]]:
    """One :func:`method_row` per method against the simulator's ground truth, lead times by asset (in the order
    of ``truths``); alerts of assets without ground truth are not counted."""
    labels = Labels(truth_events(truths))
    known = {truth.asset_id for truth in truths}
    failed = [truth.asset_id for truth in truths if truth.failure_at is not None]
    rows = []
    for method, data in series.items():
        opened = {asset_id: times for asset_id, times in data.opened.items() if asset_id in known}
        row = method_row(method, data.scores, opened, labels, event_key=lambda event: event.asset_id)
        leads = row["lead_times_hours"]
        row["lead_times_hours"] = {asset_id: leads[asset_id] for asset_id in failed}
        rows.append(row)
    return rows


def first_alertable_hours(records: Sequence[WindowRecord]) -> float | None:
    """The median over assets of the hours from an asset's first window to its first window out of warm-up
    (``None`` when some asset never leaves it).

    >>> hour = 3_600 * 10**9
    >>> first_alertable_hours([WindowRecord("a", end, end < 2 * hour, {}, {}, ()) for end in range(0, 5 * hour, hour)])
    2.0
    """
    first: dict[str, int] = {}
    alertable: dict[str, int | None] = {}
    for record in records:
        first.setdefault(record.asset_id, record.end)
        if alertable.get(record.asset_id) is None:
            alertable[record.asset_id] = None if record.warmup else record.end
    hours = [(end - first[asset]) / NS_PER_HOUR for asset, end in alertable.items() if end is not None]
    return round(statistics.median(hours), 2) if hours and len(hours) == len(alertable) else None
