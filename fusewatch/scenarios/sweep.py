"""A detection sweep: many seeds of a simulated fleet, every fault's outcome, grouped by type and first modality.

``fusewatch sweep`` scores one fleet per seed through the streaming pipeline (as ``fusewatch evaluate`` does),
replays the configured fusion method's alerts, and keeps one document per seed under ``OUT/seeds/``: every
fault (type, first modality, onset, failure, found or not, lead time, the fused and per-modality peaks during
the fault, and for a miss why) and every asset's false alarms. A seed whose document exists with the same
settings is not scored again, so an interrupted sweep resumes where it stopped. :func:`aggregate` then groups
the faults of all seeds by fault type and first modality.

>>> fault = {"asset_id": "pump-01", "fault_type": "leak", "first_modality": "camera", "onset_hours": 50.0,
...          "duration_hours": 70.0, "found": True, "lead_time_hours": 30.0}
>>> seed = {"seed": 0, "assets": 2, "asset_days": 40.0, "false_alarms": {"pump-01": 1, "motor-02": 0},
...         "false_alarm_list": [{"asset_id": "pump-01", "at_hours": 20.0, "when": "30.0 h before the onset",
...                               "channel": "camera 5.2"}],
...         "faults": [fault, {**fault, "found": False, "lead_time_hours": None, "why": "..."}]}
>>> report = aggregate([seed])
>>> report["found"], report["faults"], report["false_alarms_per_asset_day"], report["groups"][0]["median_lead_h"]
(1, 2, 0.025, 30.0)
>>> [(miss["seed"], miss["asset_id"], miss["onset_hours"], miss["why"]) for miss in report["misses"]]
[(0, 'pump-01', 50.0, '...')]
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.config import FusewatchConfig
from fusewatch.core.errors import ConfigError
from fusewatch.core.events import GroundTruth
from fusewatch.core.timeutil import NS_PER_HOUR, format_time
from fusewatch.evaluation.labels import Labels, truth_events
from fusewatch.evaluation.methods import WindowRecord, asset_days, replay_methods
from fusewatch.evaluation.outcomes import alert_outcomes
from fusewatch.scenarios.scoring import load_records, save_records, score_plant
from streams.alerts import AlertPolicyConfig

#: The format of the per-seed documents; a document of another format is scored again.
SEED_FORMAT = "fusewatch-sweep-seed/3"


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0-19"``, ``"3,5,7-9"`` or ``"4"``; a malformed list is a :class:`ConfigError`.

    >>> parse_seeds("0-2,7")
    [0, 1, 2, 7]
    """
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            seeds += range(int(low), int(high if dash else low) + 1)
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected seeds such as 0-19 or 3,5,7-9") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"--seeds {text!r}: expected seeds such as 0-19 or 3,5,7-9")
    return sorted(set(seeds))


def settings_key(config: FusewatchConfig, assets: int, days: float, method: str, fleet: str) -> str:
    """A fingerprint of everything a seed's outcome depends on but the seed (the models, alerts and fleet)."""
    text = json.dumps({"models": config.models.model_dump(mode="json"), "alerts": config.alerts.model_dump(mode="json"),
                       "assets": assets, "days": days, "method": method, "fleet": fleet}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_seed(seed: int, simulator: SimulatorConfig, config: FusewatchConfig, method: str,
             progress: bool = True, records_path: Path | None = None) -> dict[str, Any]:
    """Score one fleet and describe every fault's outcome and every asset's false alarms under ``method``.

    With ``records_path``, the scored windows are saved there, or read from there when the file exists (the
    models are then not run again: only the fusion method and the alerts are replayed)."""
    started = time.perf_counter()
    plant = PlantSimulator(simulator)
    if records_path is not None and records_path.exists():
        records = load_records(records_path)
    else:
        records = score_plant(functools.partial(PlantSimulator, simulator), len(plant.asset_ids), plant.total_steps,
                              config, f"sweep-seed{seed}", progress)
        if records_path is not None:
            save_records(records, records_path)
    document = seed_outcomes(records, plant.ground_truth, config, method, simulator.start_ns)
    document.update(seed=seed, assets=len(plant.asset_ids), days=simulator.days,
                    wall_seconds=round(time.perf_counter() - started, 1))
    return document


def seed_outcomes(records: Sequence[WindowRecord], truths: Sequence[GroundTruth], config: FusewatchConfig,
                  method: str, start_ns: int) -> dict[str, Any]:
    """Each fault's outcome under ``method`` (found, lead, peaks, why missed) and the false alarms per asset."""
    series, _ = replay_methods(records, config.models, config.alerts, methods=(method,))
    scores = series[method].scores
    outcomes, false_alarms = alert_outcomes(Labels(truth_events(truths)), series[method].opened)
    by_asset = {truth.asset_id: truth for truth in truths}
    events = {outcome.event.asset_id: outcome.event for outcome in outcomes}  # one fault per simulated asset
    spans: dict[str, list[WindowRecord]] = {}
    for record in records:
        event = events.get(record.asset_id)
        if event is not None and event.covers(record.end):
            spans.setdefault(record.asset_id, []).append(record)
    faults = []
    for outcome in outcomes:
        event, truth = outcome.event, by_asset[outcome.event.asset_id]
        fused = [value for end, value in scores.get(event.asset_id, ()) if event.covers(end) and not math.isnan(value)]
        inside = spans.get(event.asset_id, [])
        peaks = {m: round(max(_decades(r.x.get(m, 0.0)) for r in inside), 2)
                 for m in sorted({m for r in inside for m in r.x})}
        fault = {
            "asset_id": event.asset_id, "asset_kind": truth.asset_kind, "fault_type": truth.fault_type,
            "first_modality": truth.first_modality, "onset": format_time(event.start),
            "onset_hours": round((event.start - start_ns) / NS_PER_HOUR, 2),
            "duration_hours": round(((event.failure or event.start) - event.start) / NS_PER_HOUR, 2),
            "found": outcome.first_alert is not None, "lead_time_hours": outcome.lead_time_hours,
            "peak_fused": round(max(fused), 4) if fused else None, "peak_decades": peaks,
        }
        if not fault["found"]:
            fault["why"] = why_missed(fused, peaks, config.alerts)
        faults.append(fault)
    window = {(record.asset_id, record.end): record.x for record in records}
    alarms = [{"asset_id": asset, "at_hours": round((ts - start_ns) / NS_PER_HOUR, 2),
               "when": false_alarm_when(ts, by_asset.get(asset)), "channel": _most_surprising(window.get((asset, ts)))}
              for asset, times in sorted(series[method].opened.items()) for ts in times
              if not (asset in events and events[asset].covers(ts))]
    return {"format": SEED_FORMAT, "method": method, "faults": faults, "asset_days": round(asset_days(scores), 3),
            "false_alarms": {asset: false_alarms.get(asset, 0) for asset in sorted(scores)},
            "false_alarm_list": alarms}


def false_alarm_when(ts: int, truth: GroundTruth | None) -> str:
    """Where a false alarm opened in its asset's life.

    >>> truth = GroundTruth(asset_id="pump-01", asset_kind="pump", fault_type="leak", onset_at=100 * NS_PER_HOUR,
    ...                     failure_at=150 * NS_PER_HOUR, restart_at=156 * NS_PER_HOUR, first_modality="camera")
    >>> [false_alarm_when(h * NS_PER_HOUR, truth) for h in (40, 153, 170)]
    ["60.0 h before the fault's onset", 'while the machine was down', '14.0 h after the restart']
    """
    if truth is None or truth.onset_at is None:
        return "on a healthy asset"
    if ts < truth.onset_at:
        return f"{(truth.onset_at - ts) / NS_PER_HOUR:.1f} h before the fault's onset"
    if truth.restart_at is not None and ts > truth.restart_at:
        return f"{(ts - truth.restart_at) / NS_PER_HOUR:.1f} h after the restart"
    if truth.failure_at is not None and ts > truth.failure_at:
        return "while the machine was down"
    return "during a fault that had not failed by the end of the run"


def why_missed(fused: Sequence[float], peaks: dict[str, float], alerts: AlertPolicyConfig) -> str:
    """Why no alert opened during a fault, in words (``peaks``: each channel's highest surprise in decades).

    >>> alerts = AlertPolicyConfig()
    >>> print(why_missed([0.2, 0.3], {"camera": 3.5, "vibration": 0.3}, alerts))
    the fused score peaked at 0.30, below the 0.45 to open; camera came closest (3.5 decades at its peak)
    >>> why_missed([], {}, alerts)
    'every window of the fault was in the warm-up'
    """
    if not fused:
        return "every window of the fault was in the warm-up"
    leading = max(peaks.items(), key=lambda item: item[1]) if peaks else None
    tail = f"; {leading[0]} came closest ({leading[1]:.1f} decades at its peak)" if leading else ""
    peak = max(fused)
    if peak < alerts.open_threshold:
        return f"the fused score peaked at {peak:.2f}, below the {alerts.open_threshold} to open{tail}"
    best = max(sum(v >= alerts.open_threshold for v in fused[i:i + alerts.open_n]) for i in range(len(fused)))
    if best < alerts.open_k:
        return (f"the fused score reached {alerts.open_threshold} in at most {best} of {alerts.open_n} windows"
                f" (needs {alerts.open_k}){tail}")
    return "an alert opened before the onset, or its cooldown, still covered the fault"


def aggregate(seeds: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The sweep's figures: found, lead and misses per (fault type, first modality), false alarms per asset."""
    documents = list(seeds)
    faults = [dict(fault, seed=doc["seed"]) for doc in documents for fault in doc["faults"]]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for fault in faults:
        groups.setdefault((str(fault["fault_type"]), str(fault["first_modality"])), []).append(fault)
    alarms = [count for doc in documents for count in doc["false_alarms"].values()]
    asset_days = sum(doc["asset_days"] for doc in documents)
    return {
        "seeds": [doc["seed"] for doc in documents],
        "faults": len(faults), "found": sum(f["found"] for f in faults),
        "median_lead_h": _median(f["lead_time_hours"] for f in faults if f["found"]),
        "assets": sum(doc["assets"] for doc in documents),
        "false_alarms": sum(alarms), "assets_over_one_false_alarm": sum(count > 1 for count in alarms),
        "most_false_alarms_of_an_asset": max(alarms, default=0),
        "false_alarms_per_asset_day": round(sum(alarms) / asset_days, 4) if asset_days else None,
        "groups": [{"fault_type": kind, "first_modality": first, "faults": len(group),
                    "found": sum(f["found"] for f in group),
                    "median_lead_h": _median(f["lead_time_hours"] for f in group if f["found"]),
                    "lead_times_h": [f["lead_time_hours"] for f in group if f["found"]]}
                   for (kind, first), group in sorted(groups.items())],
        "misses": [{key: fault[key] for key in ("seed", "asset_id", "fault_type", "first_modality", "onset_hours",
                                                "duration_hours", "why")} for fault in faults if not fault["found"]],
        "false_alarms_by_seed": {str(doc["seed"]): sum(doc["false_alarms"].values()) for doc in documents},
        "false_alarm_list": [dict(alarm, seed=doc["seed"]) for doc in documents for alarm in doc["false_alarm_list"]],
    }


def format_report(report: dict[str, Any], title: str) -> str:
    """The sweep's figures as Markdown (the tables docs/models.md quotes).

    >>> print(format_report(aggregate([]), "empty").splitlines()[2])
    faults found before failure: 0/0; false alarms: 0 over 0 assets (0 with more than one)
    """
    share = f" ({100 * report['found'] / report['faults']:.1f} %)" if report["faults"] else ""
    lines = [f"# {title}", "",
             f"faults found before failure: {report['found']}/{report['faults']}{share}; false alarms:"
             f" {report['false_alarms']} over {report['assets']} assets ({report['assets_over_one_false_alarm']}"
             f" with more than one)",
             f"median lead: {_cell(report['median_lead_h'])} h; false alarms per asset-day:"
             f" {report['false_alarms_per_asset_day']}", "",
             "| fault type | first modality | faults | found | median lead (h) |", "|---|---|---|---|---|"]
    lines += [f"| {g['fault_type']} | {g['first_modality']} | {g['faults']} | {g['found']} |"
              f" {_cell(g['median_lead_h'])} |" for g in report["groups"]]
    lines += ["", "| seed | asset | fault type | first modality | onset (h) | fault (h) | why missed |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {m['seed']} | {m['asset_id']} | {m['fault_type']} | {m['first_modality']} | {m['onset_hours']} |"
              f" {m['duration_hours']} | {m['why']} |" for m in report["misses"]]
    lines += ["", "| seed | asset | false alarm opened at (h) | when | most surprising channel (decades) |",
              "|---|---|---|---|---|"]
    lines += [f"| {a['seed']} | {a['asset_id']} | {a['at_hours']} | {a['when']} | {_cell(a['channel'])} |"
              for a in report["false_alarm_list"]]
    return "\n".join(lines) + "\n"


def sweep(seeds: Sequence[int], out: Path, config: FusewatchConfig, method: str,
          fleet: Callable[[int, float, int], SimulatorConfig], assets: int, days: float, fleet_name: str,
          progress: bool = True, on_seed: Callable[[dict[str, Any], bool], None] | None = None,
          records: Path | None = None) -> dict[str, Any]:
    """Score every seed not already in ``out/seeds`` under the same settings; the aggregate of all of them.

    With ``records``, each seed's scored windows are kept in ``records/seed-S-<fingerprint>.records`` (see
    :func:`run_seed`). The fingerprint is that of the scoring: the models, the alerts (an asset in alert does not
    learn) and the fleet, with the configured fusion method; so another ``method`` replays the same windows, as
    ``fusewatch evaluate`` compares its methods, and any other change scores the fleet again.
    """
    key = settings_key(config, assets, days, method, fleet_name)
    scoring = settings_key(config, assets, days, config.models.fusion, fleet_name)
    documents = []
    for seed in seeds:
        path = out / "seeds" / f"seed-{seed}.json"
        document = _read(path)
        reused = document is not None and document.get("settings") == key
        if not reused:
            kept = None if records is None else records / f"seed-{seed}-{scoring}.records"
            document = run_seed(seed, fleet(assets, days, seed), config, method, progress, kept)
            document["settings"] = key
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".part")
            temporary.write_text(json.dumps(document, indent=1) + "\n")
            temporary.replace(path)
        assert document is not None
        documents.append(document)
        if on_seed is not None:
            on_seed(document, reused)
    return aggregate(documents)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and document.get("format") == SEED_FORMAT else None


def _most_surprising(x: dict[str, float] | None) -> str | None:
    """The channel of a window's calibrated scores with the most surprise, and how much (``"camera 5.2"``).

    >>> _most_surprising({"camera": 0.99999, "vibration": 0.9})
    'camera 5.0'
    """
    if not x:
        return None
    channel = max(x, key=lambda m: x[m])
    return f"{channel} {_decades(x[channel]):.1f}"


def _decades(calibrated: float) -> float:
    """A calibrated score as decades of surprise, ``-log10(1 - c)``, at most 10 (the fusion's scale)."""
    return min(-math.log10(max(1.0 - calibrated, 1e-10)), 10.0)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None
