"""Scoring a run against ground truth: detection, lead time and false alarms per asset.

An alert *detects* a fault when it opens within ``[onset, failure]``; the lead time is ``failure - first
detecting alert``. Every other opened alert is a false alarm (a healthy asset's, one before the onset, or one
after the failure).

>>> from fusewatch.core.events import GroundTruth
>>> from fusewatch.core.timeutil import NS_PER_HOUR
>>> truth = GroundTruth(asset_id="pump-01", asset_kind="pump", fault_type="leak", onset_at=10 * NS_PER_HOUR,
...                     failure_at=50 * NS_PER_HOUR, restart_at=60 * NS_PER_HOUR, first_modality="camera")
>>> row = summarize_asset(truth, [30 * NS_PER_HOUR, 70 * NS_PER_HOUR])
>>> row["first_alert_at"], row["lead_time_hours"], row["false_alarms"]
('1970-01-02T06:00:00Z', 20.0, 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fusewatch.core.events import Alert, GroundTruth
from fusewatch.core.timeutil import NS_PER_HOUR, format_time


def _iso(ns: int | None) -> str | None:
    return None if ns is None else format_time(ns)


def summarize_asset(truth: GroundTruth, opened_at: Sequence[int]) -> dict[str, Any]:
    """One row of the demo summary for ``truth`` given the times its alerts opened."""
    first: int | None = None
    false_alarms = 0
    for ts in sorted(opened_at):
        onset, failure = truth.onset_at, truth.failure_at
        inside = onset is not None and failure is not None and onset <= ts <= failure
        if inside and first is None:
            first = ts
        elif not inside:
            false_alarms += 1
    lead = None if first is None or truth.failure_at is None else (truth.failure_at - first) / NS_PER_HOUR
    return {
        "asset_id": truth.asset_id,
        "fault_type": truth.fault_type,
        "onset_at": _iso(truth.onset_at),
        "failure_at": _iso(truth.failure_at),
        "first_alert_at": _iso(first),
        "lead_time_hours": None if lead is None else round(lead, 3),
        "false_alarms": false_alarms,
    }


def summarize_run(truths: Iterable[GroundTruth], alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """Rows for every asset, from its ground truth and the ``opened`` transitions of its alerts."""
    opened: dict[str, list[int]] = {}
    for alert in alerts:
        if alert.transition == "opened":
            opened.setdefault(alert.asset_id, []).append(alert.ts)
    return [summarize_asset(truth, opened.get(truth.asset_id, [])) for truth in truths]


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
