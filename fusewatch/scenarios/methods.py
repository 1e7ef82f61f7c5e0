"""Every fusion method side by side over one scored run: window-level ROC/PR AUC, lead times, false alarms.

A run's windows (their calibrated channels, the early detector's attribution and the log entries they
brought) are replayed in event-time order through one :class:`~streams.fusion_stage.FusionStage`, which gives
every method's score from the same learned state and lets stacking learn from the log's labels as it goes.
Each method's scores then drive its own :class:`~streams.alerts.AlertPolicy` (the configured thresholds), and
are compared with the ground truth:

- **window labels**: a window of a faulty asset between onset and failure is positive; windows between the
  failure and the restart (the machine is down) are left out; every other window is negative. Warm-up
  windows are left out.
- **lead time**: failure − the first alert opened between onset and failure; a missed fault counts 0 h, so
  the median is over every fault, missed ones included.
- **false alarms**: alerts opened outside ``[onset, failure]``, per asset and day after warm-up.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusewatch.core.events import GroundTruth, Score
from fusewatch.core.timeutil import NS_PER_HOUR
from fusewatch.evaluation.metrics import pr_auc, roc_auc
from fusewatch.evaluation.outcomes import summarize_asset
from streams.alerts import AlertPolicy, AlertPolicyConfig
from streams.fusion_stage import METHODS, FusionStage
from streams.model_config import ModelConfig
from streams.pipeline import ScoredWindow

NS_PER_DAY = 24 * NS_PER_HOUR


@dataclass(frozen=True)
class WindowRecord:
    """What the method comparison needs of one scored window."""

    asset_id: str
    end: int
    warmup: bool
    x: dict[str, float]
    shares: dict[str, float]
    logs: tuple[tuple[int, str], ...]


def record_of(scored: ScoredWindow) -> WindowRecord:
    """The compact record of a scored window (features and explanations dropped)."""
    score = scored.score
    return WindowRecord(score.asset_id, score.window_end, score.warmup, scored.fusion_input, scored.early_shares,
                        scored.new_logs)


@dataclass
class MethodSeries:
    """Per asset, the (window end, score) series of one method, plus the alert opening times."""

    scores: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    opened: dict[str, list[int]] = field(default_factory=dict)


def replay_methods(
    records: Iterable[WindowRecord], models: ModelConfig, alerts: AlertPolicyConfig
) -> tuple[dict[str, MethodSeries], dict[str, Any]]:
    """Replay the records (any order; sorted here by event time) through every method and its alert policy.

    Returns the series per method and what stacking learned: labelled windows (positive / negative), its
    weights per modality and its bias.
    """
    stage = FusionStage(models)
    series = {method: MethodSeries() for method in METHODS}
    policies = {method: AlertPolicy(alerts, run_id=method) for method in METHODS}
    for record in sorted(records, key=lambda r: (r.end, r.asset_id)):
        scores = stage.all_methods(record.x, record.shares)
        stage.observe(record.asset_id, record.end, record.x, record.logs)
        repaired = any(kind == "repair" for _, kind in record.logs)
        for method, value in scores.items():
            data = series[method]
            data.scores.setdefault(record.asset_id, []).append((record.end, value) if not record.warmup else
                                                               (record.end, float("nan")))
            policy = policies[method]
            if repaired:
                policy.resolve(record.asset_id, record.end)
            score = Score.model_construct(
                asset_id=record.asset_id, window_start=record.end, window_end=record.end, fused=value,
                calibrated={}, raw={}, contributions={}, present={}, leading=None, top_features=[],
                warmup=record.warmup, model_version=method, run_id=method,
            )
            for alert in policy.update(score):
                if alert.transition == "opened":
                    data.opened.setdefault(record.asset_id, []).append(alert.ts)
    stacking = {"labels": dict(stage.labels_learned), "bias": round(stage.stacking.bias, 3),
                "weights": {m: round(w, 3) for m, w in stage.stacking.weights.items()}}
    return series, stacking


def _window_label(truth: GroundTruth | None, end: int) -> bool | None:
    if truth is None or truth.onset_at is None or truth.failure_at is None:
        return False
    if truth.onset_at <= end <= truth.failure_at:
        return True
    restart = truth.restart_at if truth.restart_at is not None else truth.failure_at
    return None if truth.failure_at < end <= restart else False


def method_rows(series: dict[str, MethodSeries], truths: Sequence[GroundTruth]) -> list[dict[str, Any]]:
    """One row per method: ROC AUC, PR AUC, median lead time, false alarms per asset-day, faults found."""
    by_asset = {t.asset_id: t for t in truths}
    faults = [t for t in truths if t.failure_at is not None]
    rows = []
    for method, data in series.items():
        labels: list[bool] = []
        values: list[float] = []
        scored_days = 0.0
        for asset_id, points in data.scores.items():
            live = [(end, value) for end, value in points if not np.isnan(value)]
            if live:
                scored_days += (live[-1][0] - live[0][0]) / NS_PER_DAY
            for end, value in live:
                label = _window_label(by_asset.get(asset_id), end)
                if label is not None:
                    labels.append(label)
                    values.append(value)
        summaries = [summarize_asset(t, data.opened.get(t.asset_id, [])) for t in truths]
        leads = [s["lead_time_hours"] or 0.0 for s in summaries if s["failure_at"] is not None]
        false_alarms = sum(s["false_alarms"] for s in summaries)
        rows.append({
            "method": method,
            "roc_auc": roc_auc(labels, values),
            "pr_auc": pr_auc(labels, values),
            "lead_time_hours_median": statistics.median(leads) if leads else None,
            "false_alarms_per_asset_day": false_alarms / scored_days if scored_days else None,
            "faults_detected": sum(1 for s in summaries if s["first_alert_at"] is not None),
            "lead_times_hours": {s["asset_id"]: s["lead_time_hours"] for s in summaries if s["failure_at"]},
            "faults": len(faults),
            "false_alarms": false_alarms,
            "windows": len(values),
        })
    return rows
