"""``fusewatch train --fusion-windows``: the learned fusion's part of a bundle (fusewatch/fusion_training.py)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from fusewatch.config import FusewatchConfig
from fusewatch.core.assets import AssetRegistry
from fusewatch.core.errors import ConfigError

HELP = """\
docs/models.md, "Learned fusion". --fusion-windows takes scored windows kept by `fusewatch
evaluate --records` or `fusewatch sweep --records` (files, or directories of *.records), one history each. The
last --fusion-hold-out of them are held out; a gate is trained on the others and goes into the bundle only if
it beats Fisher on the held-out histories (at least as many faults found with no more false alarms, and better
in one of them or in the median lead). Labels come from each history's own log (a window within [models]
label_horizon_hours before a failure entry is positive) or from --labels.
"""


def add_fusion_options(parser: argparse.ArgumentParser) -> None:
    """The options of the learned fusion."""
    group = parser.add_argument_group("learned fusion", HELP)
    group.add_argument("--fusion-windows", nargs="+", type=Path, default=[], metavar="PATH",
                       help="kept scored windows: *.records files or directories of them (at least two histories)")
    group.add_argument("--fusion-hold-out", type=int, default=None, metavar="N",
                       help="how many of the histories (the last, by name) are held out (default: a third)")
    group.add_argument("--labels", type=Path, default=None, metavar="CSV",
                       help="fault labels (asset_id, fault_start, failure; docs/backtest.md) instead of the logs'")


def history_files(paths: list[Path]) -> list[Path]:
    """The records files named, directories expanded to their ``*.records`` (sorted by name)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.records"))
            if not found:
                raise ConfigError(f"--fusion-windows {path}: no *.records file in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"--fusion-windows {path}: no such file or directory")
    return files


def learn_fusion(args: argparse.Namespace, config: FusewatchConfig,
                 registry: AssetRegistry | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and judge the gate; the bundle parts (none unless it beats Fisher) and what the manifest records."""
    from fusewatch.core.timeutil import NS_PER_HOUR
    from fusewatch.evaluation.labels import Labels, read_labels_csv
    from fusewatch.fusion_training import beats_fisher, held_out_rows, log_labels, train_gate
    from fusewatch.scenarios.scoring import load_records

    files = history_files(args.fusion_windows)
    hold_out = args.fusion_hold_out if args.fusion_hold_out is not None else max(1, len(files) // 3)
    if len(files) < 2 or not 1 <= hold_out < len(files):
        raise ConfigError(f"--fusion-windows: {len(files)} histories, {hold_out} held out; need at least one to "
                          "train on and one held out")
    horizon = int(config.models.label_horizon_hours * NS_PER_HOUR)
    csv_events = read_labels_csv(args.labels, horizon) if args.labels is not None else None
    histories = []
    for path in files:
        records = load_records(path)
        if registry is not None:
            records = [r if r.kind is not None else replace(r, kind=registry.kind(r.asset_id)) for r in records]
        labels = Labels(csv_events) if csv_events is not None else log_labels(records, horizon)
        histories.append((records, labels))
    kinds = tuple(sorted({r.kind for records, _ in histories for r in records if r.kind is not None}))
    training, held = histories[:-hold_out], histories[-hold_out:]
    print(f"learned fusion: training on {len(training)} histories, {len(held)} held out; kinds: "
          f"{', '.join(kinds) or 'none known'}", flush=True)
    gate = train_gate(training, kinds, config)
    rows = held_out_rows(held, gate, config)
    kept = beats_fisher(rows)
    print("held out:          found  false alarms  median lead (h)")
    for row in rows:
        print(f"  {row['method']:<16}{row['found']:>3}/{row['faults']:<4}{row['false_alarms']:>10}"
              f"{row['lead_time_hours_median'] if row['lead_time_hours_median'] is not None else '-':>16}")
    print("learned fusion: " + ("beats Fisher on the held-out histories: kept in the bundle" if kept else
                                "does not beat Fisher on the held-out histories: left out of the bundle"))
    origin = {"kept": kept, "trained_on": [p.name for p in files[:-hold_out]],
              "held_out": [p.name for p in files[-hold_out:]], "labels": "csv" if csv_events else "logs",
              "held_out_rows": rows, **gate.made_from}
    return (replace(gate, made_from=origin).parts() if kept else {}), origin
