"""Outcomes: what the alerts made of the labelled events — detection, lead time, false alarms.

An alert *detects* an event when it opens within ``[start, failure]`` (for an ongoing event, after its start);
the lead time is ``failure - first detecting alert``. Every alert opened outside every event of its asset is a
false alarm (a healthy asset's, one before the start, one while the machine is down after the failure).
These are the definitions of the demo summary, of ``fusewatch evaluate``'s rows and of ``fusewatch backtest``.

>>> from fusewatch.core.timeutil import NS_PER_HOUR as H
>>> labels = Labels([LabelledEvent("pump-01", start=52 * H, failure=100 * H, start_known=False, source="log")])
>>> outcomes, false_alarms = alert_outcomes(labels, {"pump-01": [40 * H, 60 * H, 90 * H, 110 * H]})
>>> outcomes[0].lead_time_hours, false_alarms
(40.0, {'pump-01': 2})

The demo's row of one simulated asset:

>>> from fusewatch.core.events import GroundTruth
>>> truth = GroundTruth(asset_id="pump-01", asset_kind="pump", fault_type="leak", onset_at=10 * H,
...                     failure_at=50 * H, restart_at=60 * H, first_modality="camera")
>>> row = summarize_asset(truth, [30 * H, 70 * H])
>>> row["first_alert_at"], row["lead_time_hours"], row["false_alarms"]
('1970-01-02T06:00:00Z', 20.0, 1)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusewatch.core.events import Alert, GroundTruth
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR, format_time
from fusewatch.evaluation.labels import LabelledEvent, Labels, truth_events
from fusewatch.evaluation.metrics import pr_auc, roc_auc


@dataclass(frozen=True)
class EventOutcome:
    """What the alerts made of one event: the first alert opened in ``[start, failure]`` and the lead time."""

    event: LabelledEvent
    first_alert: int | None

    @property
    def lead_time_hours(self) -> float | None:
        if self.first_alert is None or self.event.failure is None:
            return None
        return round((self.event.failure - self.first_alert) / NS_PER_HOUR, 3)

    def as_dict(self) -> dict[str, Any]:
        return {**self.event.as_dict(), "detected": self.first_alert is not None,
                "first_alert_at": _iso(self.first_alert), "lead_time_hours": self.lead_time_hours}


def alert_outcomes(labels: Labels, opened: Mapping[str, Sequence[int]]) -> tuple[list[EventOutcome], dict[str, int]]:
    """Each event's outcome (in the order of ``labels.events``), and per asset of ``opened`` the false alarms."""
    outcomes = [EventOutcome(e, min((ts for ts in opened.get(e.asset_id, ()) if e.covers(ts)), default=None))
                for e in labels.events]
    false_alarms = {asset: sum(1 for ts in times if not any(e.covers(ts) for e in labels.by_asset.get(asset, ())))
                    for asset, times in opened.items()}
    return outcomes, false_alarms


def opened_by_asset(alerts: Iterable[Alert]) -> dict[str, list[int]]:
    """The times of the ``opened`` transitions, per asset."""
    opened: dict[str, list[int]] = {}
    for alert in alerts:
        if alert.transition == "opened":
            opened.setdefault(alert.asset_id, []).append(alert.ts)
    return opened


def summarize_asset(truth: GroundTruth, opened_at: Sequence[int]) -> dict[str, Any]:
    """One row of the demo summary for ``truth`` given the times its alerts opened."""
    outcomes, false_alarms = alert_outcomes(Labels(truth_events([truth])), {truth.asset_id: opened_at})
    outcome = outcomes[0] if outcomes else None
    return {
        "asset_id": truth.asset_id,
        "fault_type": truth.fault_type,
        "onset_at": _iso(truth.onset_at),
        "failure_at": _iso(truth.failure_at),
        "first_alert_at": _iso(None if outcome is None else outcome.first_alert),
        "lead_time_hours": None if outcome is None else outcome.lead_time_hours,
        "false_alarms": false_alarms[truth.asset_id],
    }


def summarize_run(truths: Iterable[GroundTruth], alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """Rows for every asset, from its ground truth and the ``opened`` transitions of its alerts."""
    opened = opened_by_asset(alerts)
    return [summarize_asset(truth, opened.get(truth.asset_id, [])) for truth in truths]


def asset_rows(scores: Mapping[str, Sequence[tuple[int, float]]], opened: Mapping[str, Sequence[int]],
               transitions: Mapping[str, int], labels: Labels) -> list[dict[str, Any]]:
    """Per asset, a run's detection quality: events, detected, lead times, false alarms, alerts, AUCs."""
    outcomes, false_alarms = alert_outcomes(labels, opened)
    rows = []
    for asset_id in sorted(set(scores) | set(labels.by_asset)):
        points = np.array([v for _, v in scores.get(asset_id, ())], dtype=float)
        live = [(end, v) for end, v in scores.get(asset_id, ()) if not math.isnan(v)]
        days = (live[-1][0] - live[0][0]) / NS_PER_DAY if live else 0.0
        pairs = [(label, v) for end, v in live if (label := labels.window_label(asset_id, end)) is not None]
        mine = [o for o in outcomes if o.event.asset_id == asset_id]
        leads = [o.lead_time_hours or 0.0 for o in mine if o.event.failure is not None]
        rows.append({
            "asset_id": asset_id,
            "windows": int(points.size),
            "events": len(mine),
            "detected": sum(1 for o in mine if o.first_alert is not None),
            "lead_time_hours_median": statistics.median(leads) if leads else None,
            "false_alarms": false_alarms.get(asset_id, 0),
            "false_alarms_per_day": round(false_alarms.get(asset_id, 0) / days, 4) if days else None,
            "alerts_opened": len(opened.get(asset_id, ())),
            "alert_transitions": transitions.get(asset_id, 0),
            "roc_auc": _rounded(roc_auc([p[0] for p in pairs], [p[1] for p in pairs])),
            "pr_auc": _rounded(pr_auc([p[0] for p in pairs], [p[1] for p in pairs])),
            "peak_fused": _rounded(float(np.nanmax(points))) if points.size and not np.isnan(points).all() else None,
        })
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of summary rows for the console.

    >>> print(format_table([{"asset_id": "pump-01", "fault_type": None, "lead_time_hours": None}]))
    asset_id  fault_type  lead_time_hours
    pump-01   -           -
    """
    if not rows:
        return "(no assets)"
    columns = list(rows[0])
    cells = [[("-" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    return "\n".join(lines)


def _iso(ns: int | None) -> str | None:
    return None if ns is None else format_time(ns)


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)
