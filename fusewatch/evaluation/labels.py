"""Labels: the fault events a run is measured against, and the label of each scored window.

Whatever the source, the truth is a list of *events*, each a fault of one asset from its start to its failure
(and the restart after the repair, when known):

- :func:`truth_events`: the simulator's ground truth (``fusewatch demo``, ``fusewatch evaluate``), from onset
  to failure;
- :class:`LogLabels`: the maintenance-log entries inside a recorded history (``fusewatch backtest``): an entry
  whose effective kind is ``failure`` (its fault start is unknown, so the event starts ``label_horizon_hours``
  before it, as the stacking labeler assumes); a repair entry after a failure marks the restart. Operator
  instructions (entries with an ``action``) are never labels;
- :func:`read_labels_csv`: a CSV file ``asset_id,fault_start,failure`` (``failure`` empty: ongoing at the end
  of the history; ``fault_start`` empty: unknown, the horizon before the failure).

:class:`Labels` holds the events by asset and labels windows: positive inside an event, left out while the
machine is down (between a failure and its restart), negative otherwise:

>>> from fusewatch.core.timeutil import NS_PER_HOUR as H
>>> labels = Labels([LabelledEvent("pump-01", start=52 * H, failure=100 * H, start_known=False, source="log",
...                                restart=104 * H)])
>>> [labels.window_label("pump-01", t * H) for t in (51, 60, 101, 105)], labels.window_label("motor-02", 60 * H)
([False, True, None, False], False)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fusewatch.core.codec import decode
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.events import GroundTruth, MaintenanceLog
from fusewatch.core.history import RecordedMessage
from fusewatch.core.timeutil import format_time, parse_time
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


def truth_events(truths: Iterable[GroundTruth]) -> list[LabelledEvent]:
    """The simulator's ground truth as events: from onset to failure, the restart after the repair.

    A fault that has not failed by the end of the run is no event (its windows count as normal, its alerts as
    false alarms); a failure without an onset is an event no alert can detect (its start lies after its failure).

    >>> from fusewatch.core.timeutil import NS_PER_HOUR as H
    >>> healthy = GroundTruth(asset_id="pump-01", asset_kind="pump", fault_type=None, onset_at=None, failure_at=None,
    ...                       restart_at=None, first_modality=None)
    >>> leak = GroundTruth(asset_id="pump-02", asset_kind="pump", fault_type="leak", onset_at=10 * H,
    ...                    failure_at=50 * H, restart_at=60 * H, first_modality="camera")
    >>> [(e.asset_id, e.start // H, e.failure // H, e.restart // H) for e in truth_events([healthy, leak])]
    [('pump-02', 10, 50, 60)]
    """
    events = []
    for truth in truths:
        failure = truth.failure_at
        if failure is None:
            continue
        if truth.onset_at is None:
            events.append(LabelledEvent(truth.asset_id, failure + 1, failure, False, "ground truth"))
        else:
            events.append(LabelledEvent(truth.asset_id, truth.onset_at, failure, True, "ground truth",
                                        restart=truth.restart_at))
    return events


def event_id(event: LabelledEvent) -> str:
    """``asset@failure`` (or ``asset@start`` for an ongoing event)."""
    return f"{event.asset_id}@{format_time(event.failure if event.failure is not None else event.start)}"


class Labels:
    """The events of a run, by asset (sorted by asset and start)."""

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
