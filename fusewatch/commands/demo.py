"""``fusewatch demo``: simulate a plant and score it end to end, embedded."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fusewatch.commands.common import (
    add_config_option,
    add_influx_options,
    add_webhook_options,
    influx_settings,
    open_influx,
    positive_float,
    positive_int,
    scoring_config_of,
    webhook_endpoints,
)
from fusewatch.core.errors import FusewatchError


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="simulate a plant and score it end to end (embedded, no services)",
        description=(
            "Simulate ASSETS pumps and motors for DAYS of plant time (vibration, camera frames, maintenance logs),"
            " align and score them with the online models and late fusion, raise alerts, and write a SQLite"
            " database, an HTML report with plots and a summary against the simulator's ground truth."
        ),
    )
    parser.add_argument("--assets", type=positive_int, default=6, help="number of simulated assets (default: 6)")
    parser.add_argument("--days", type=positive_float, default=14.0, help="days of plant time (default: 14)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the simulated plant (default: 0); model seeds are in the config"
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    parser.add_argument("--summary-json", type=Path, default=None, help="also write the summary JSON here")
    add_config_option(parser)
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="worker processes, each owning a share of the assets"
        " (default: one per core, at most one per asset)"
    )
    add_influx_options(parser, "also write scores, features and alerts")
    add_webhook_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.sources.simulator import SimulatorConfig
    from fusewatch.demo import run_demo
    from fusewatch.evaluation.outcomes import format_table

    config = scoring_config_of(args)
    try:
        simulator = SimulatorConfig(assets=args.assets, days=args.days, seed=args.seed)
    except ValueError as exc:
        raise FusewatchError(f"simulator: {exc}") from None
    endpoints = webhook_endpoints(args, config)
    influx = open_influx(args, config)
    try:
        outcome = run_demo(config, simulator, args.out, args.summary_json, args.workers,
                           progress=not args.no_progress, influx=influx, webhooks=endpoints)
    finally:
        if influx is not None:
            influx.close()
    summary = outcome.summary
    print(format_table(summary["assets"]))
    print(f"\nwindows scored: {summary['windows']}   wall time: {summary['wall_seconds']:.1f} s")
    if outcome.dead_letters:
        print("dead letters: " + ", ".join(f"{k}={v}" for k, v in sorted(outcome.dead_letters.items())))
    print(f"report:   {outcome.report}")
    print(f"database: {outcome.database}")
    if influx is not None:
        target = influx_settings(args, config)
        print(f"influxdb: {summary['influx_points']} points to {target.url} ({target.database})")
    if endpoints:
        print("webhooks: " + ", ".join(f"{state} {n}" for state, n in sorted(summary["webhooks"].items()))
              if summary["webhooks"] else "webhooks: no alert to deliver")
    if args.summary_json is not None:
        print(f"summary:  {args.summary_json}")
    return 0
