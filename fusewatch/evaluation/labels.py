"""Labels and detection metrics of a backtest: labelled fault events, window labels, lead times, false alarms.

A backtest knows the truth only through its labels: *events*, each a fault of one asset from its start to its
failure. They come from the maintenance-log entries inside the history (an entry whose effective kind is
``failure``; its fault start is unknown, so the event starts ``label_horizon_hours`` before it, as the
stacking labeler assumes) or from a CSV file ``asset_id,fault_start,failure`` (``failure`` empty: ongoing at
the end of the history; ``fault_start`` empty: unknown, the horizon before the failure). Operator instructions
(entries with an ``action``) are never labels. A repair entry after a failure marks the restart: windows
between the failure and the restart (the machine is down) are left out of the window labels.

The metrics are those of ``fusewatch evaluate`` (:mod:`fusewatch.scenarios.methods`), for any number of
events per asset:

>>> from fusewatch.core.timeutil import NS_PER_HOUR as H
>>> labels = Labels([LabelledEvent("pump-01", start=52 * H, failure=100 * H, start_known=False, source="log")])
>>> outcomes, false_alarms = labels.outcomes({"pump-01": [40 * H, 60 * H, 90 * H, 110 * H]})
>>> outcomes[0].lead_time_hours, false_alarms
(40.0, {'pump-01': 2})
>>> labels.window_label("pump-01", 60 * H), labels.window_label("pump-01", 101 * H)
(True, False)
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fusewatch.core.codec import decode
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.events import MaintenanceLog
from fusewatch.core.history import RecordedMessage
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR, format_time, parse_time
from fusewatch.evaluation.metrics import pr_auc, roc_auc
from models.text import effective_kind

LABELS_HEADER = ("asset_id", "fault_start", "failure")


@dataclass(frozen=True)
class LabelledEvent:
    """One labelled fault: positive from ``start`` to ``failure`` (``None``: still ongoing at the end)."""

    asset_id: str
    start: int
    failure: int | None
    start_known: bool
    source: str
    restart: int | None = None

    def covers(self, ts: int) -> bool:
        """Whether ``ts`` lies in ``[start, failure]``: an alert opened then detects this event."""
        return self.start <= ts and (self.failure is None or ts <= self.failure)

    def down(self, ts: int) -> bool:
        """Whether ``ts`` lies after the failure and up to the restart (the machine is down)."""
        return self.failure is not None and self.restart is not None and self.failure < ts <= self.restart

    def as_dict(self) -> dict[str, Any]:
        return {"asset_id": self.asset_id, "fault_start": format_time(self.start), "fault_start_known":
                self.start_known, "failure": None if self.failure is None else format_time(self.failure),
                "restart": None if self.restart is None else format_time(self.restart), "source": self.source}


@dataclass
class LogLabels:
    """Failure and repair entries of the maintenance logs of a history, per asset."""

    failures: dict[str, list[int]] = field(default_factory=dict)
    repairs: dict[str, list[int]] = field(default_factory=dict)

    def add(self, message: RecordedMessage) -> None:
        """Note a maintenance-log message's failure or repair (unreadable ones are the processor's dead letters)."""
        if message.kind != "maintenance-logs":
            return
        try:
            entry = decode(message.value)
        except InvalidEventError:
            return
        if not isinstance(entry, MaintenanceLog) or entry.action is not None:
            return
        kind = effective_kind(entry.text, entry.kind)
        if kind == "failure":
            self.failures.setdefault(entry.asset_id, []).append(entry.ts)
        elif kind == "repair":
            self.repairs.setdefault(entry.asset_id, []).append(entry.ts)

    def events(self, horizon_ns: int) -> list[LabelledEvent]:
        """One event per failure entry, starting ``horizon_ns`` before it; a failure entry written while the
        asset is already down (after a failure, before a repair) is the same event."""
        events = []
        for asset_id, times in sorted(self.failures.items()):
            repairs = sorted(self.repairs.get(asset_id, []))
            last: int | None = None
            for ts in sorted(times):
                if last is not None and not any(last <= r <= ts for r in repairs):
                    continue
                events.append(LabelledEvent(asset_id, ts - horizon_ns, ts, False, "log"))
                last = ts
        return events

    def with_restarts(self, events: Iterable[LabelledEvent]) -> list[LabelledEvent]:
        """The events with their restart: the asset's first repair entry at or after the failure."""
        done = []
        for event in events:
            failure = event.failure
            after = [r for r in self.repairs.get(event.asset_id, []) if failure is not None and r >= failure]
            done.append(replace(event, restart=min(after)) if after else event)
        return done


def read_labels_csv(path: str | Path, horizon_ns: int) -> list[LabelledEvent]:
    """Events of a labels file (see the module docstring); :class:`ConfigError` names the line and column."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text ({exc.reason})") from None
    reader = csv.reader(text.splitlines())
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise ConfigError(f"{where}: line {reader.line_num}: {exc}") from None
    if not rows or [cell.strip() for cell in rows[0]] != list(LABELS_HEADER):
        found = ",".join(rows[0]) if rows else "an empty file"
        raise ConfigError(f"{where}: line 1: expected the header {','.join(LABELS_HEADER)}, found {found!r}")
    events = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(LABELS_HEADER):
            raise ConfigError(f"{where}: line {line}: expected {len(LABELS_HEADER)} columns, found {len(row)}")
        asset_id, start_text, failure_text = (cell.strip() for cell in row)
        if not asset_id:
            raise ConfigError(f"{where}: line {line}, column 1 (asset_id): empty")
        start = _time_cell(where, line, 2, start_text)
        failure = _time_cell(where, line, 3, failure_text)
        if start is None and failure is None:
            raise ConfigError(f"{where}: line {line}: fault_start and failure are both empty")
        if start is not None and failure is not None and failure < start:
            raise ConfigError(f"{where}: line {line}, column 3 (failure): before fault_start")
        source = f"{Path(path).name}:{line}"
        if start is not None:
            events.append(LabelledEvent(asset_id, start, failure, True, source))
        elif failure is not None:
            events.append(LabelledEvent(asset_id, failure - horizon_ns, failure, False, source))
    return events


def _time_cell(where: str, line: int, column: int, text: str) -> int | None:
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        name = LABELS_HEADER[column - 1]
        raise ConfigError(f"{where}: line {line}, column {column} ({name}): {exc}") from None


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
                "first_alert_at": None if self.first_alert is None else format_time(self.first_alert),
                "lead_time_hours": self.lead_time_hours}


class Labels:
    """The events of a backtest, by asset."""

    def __init__(self, events: Sequence[LabelledEvent]) -> None:
        self.events = sorted(events, key=lambda e: (e.asset_id, e.start))
        self.by_asset: dict[str, list[LabelledEvent]] = {}
        for event in self.events:
            self.by_asset.setdefault(event.asset_id, []).append(event)

    def window_label(self, asset_id: str, end: int) -> bool | None:
        """True inside an event, ``None`` while the machine is down after a failure, otherwise False."""
        events = self.by_asset.get(asset_id, ())
        if any(e.covers(end) for e in events):
            return True
        return None if any(e.down(end) for e in events) else False

    def outcomes(self, opened: Mapping[str, Sequence[int]]) -> tuple[list[EventOutcome], dict[str, int]]:
        """Each event's outcome, and per asset the false alarms: alerts opened outside every event."""
        outcomes = [EventOutcome(e, min((ts for ts in opened.get(e.asset_id, ()) if e.covers(ts)), default=None))
                    for e in self.events]
        false_alarms = {asset: sum(1 for ts in times if not any(e.covers(ts) for e in self.by_asset.get(asset, ())))
                        for asset, times in opened.items()}
        return outcomes, false_alarms


def event_id(event: LabelledEvent) -> str:
    """``asset@failure`` (or ``asset@start`` for an ongoing event)."""
    return f"{event.asset_id}@{format_time(event.failure if event.failure is not None else event.start)}"


def method_row(method: str, scores: Mapping[str, Sequence[tuple[int, float]]], opened: Mapping[str, Sequence[int]],
               labels: Labels) -> dict[str, Any]:
    """One method's row with the keys of ``fusewatch evaluate``'s rows (NaN scores are warm-up windows)."""
    values: list[float] = []
    targets: list[bool] = []
    scored_days = 0.0
    for asset_id, points in scores.items():
        live = [(end, value) for end, value in points if not math.isnan(value)]
        if live:
            scored_days += (live[-1][0] - live[0][0]) / NS_PER_DAY
        for end, value in live:
            label = labels.window_label(asset_id, end)
            if label is not None:
                targets.append(label)
                values.append(value)
    outcomes, false_alarms = labels.outcomes(opened)
    leads = [o.lead_time_hours or 0.0 for o in outcomes if o.event.failure is not None]
    total_false = sum(false_alarms.values())
    return {
        "method": method,
        "roc_auc": roc_auc(targets, values),
        "pr_auc": pr_auc(targets, values),
        "lead_time_hours_median": statistics.median(leads) if leads else None,
        "false_alarms_per_asset_day": total_false / scored_days if scored_days else None,
        "faults_detected": sum(1 for o in outcomes if o.first_alert is not None),
        "lead_times_hours": {event_id(o.event): o.lead_time_hours for o in outcomes if o.event.failure is not None},
        "faults": len(outcomes),
        "false_alarms": total_false,
        "windows": len(values),
    }


def asset_rows(scores: Mapping[str, Sequence[tuple[int, float]]], opened: Mapping[str, Sequence[int]],
               transitions: Mapping[str, int], labels: Labels) -> list[dict[str, Any]]:
    """Per asset, the run's detection quality: events, detected, lead times, false alarms, alerts, AUCs."""
    outcomes, false_alarms = labels.outcomes(opened)
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


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)
