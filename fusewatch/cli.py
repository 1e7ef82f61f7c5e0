"""The ``fusewatch`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from fusewatch import __version__
from fusewatch.errors import FusewatchError

# One stream per core: numeric libraries must not start spinning thread pools that fight the simulator and
# the other workers for the cores. Set before numpy, scipy or torch are imported; the environment can override.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

DESCRIPTION = """\
fusewatch: streaming predictive maintenance that fuses vibration, camera frames and maintenance logs.

Commands:
  demo    simulate a plant and score it end to end on this machine, with no services
  config  print the effective configuration (defaults, file and environment) as TOML
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="fusewatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fusewatch {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="simulate a plant and score it end to end (embedded, no services)",
        description=(
            "Simulate ASSETS pumps and motors for DAYS of plant time (vibration, camera frames, maintenance logs),"
            " align and score them with the online models and late fusion, raise alerts, and write a SQLite"
            " database, an HTML report with plots and a summary against the simulator's ground truth."
        ),
    )
    demo.add_argument("--assets", type=_positive_int, default=6, help="number of simulated assets (default: 6)")
    demo.add_argument("--days", type=_positive_float, default=14.0, help="days of plant time (default: 14)")
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the simulated plant (default: 0); model seeds are in the config"
    )
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    demo.add_argument("--summary-json", type=Path, default=None, help="also write the summary JSON here")
    demo.add_argument("--config", type=Path, default=None, help="TOML configuration file (see docs/configuration.md)")
    demo.add_argument(
        "--workers", type=_positive_int, default=None, help="worker processes, each owning a share of the assets"
        " (default: one per core, at most one per asset)"
    )
    demo.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    config = commands.add_parser(
        "config",
        help="print the effective configuration as TOML",
        description="Print the configuration fusewatch would run with: defaults, overridden by --config FILE,"
        " overridden by FUSEWATCH_* environment variables. The output is itself a valid configuration file.",
    )
    config.add_argument("--config", type=Path, default=None, help="TOML configuration file to start from")
    return parser


def _config(args: argparse.Namespace) -> int:
    from fusewatch.config import load_config, to_toml

    print(to_toml(load_config(args.config)), end="")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from connectors.simulator import SimulatorConfig
    from fusewatch.config import load_config
    from fusewatch.demo import run_demo
    from streams.evaluation import format_table

    config = load_config(args.config)
    try:
        simulator = SimulatorConfig(assets=args.assets, days=args.days, seed=args.seed)
    except ValueError as exc:
        raise FusewatchError(f"simulator: {exc}") from None
    outcome = run_demo(config, simulator, args.out, args.summary_json, args.workers, progress=not args.no_progress)
    summary = outcome.summary
    print(format_table(summary["assets"]))
    print(f"\nwindows scored: {summary['windows']}   wall time: {summary['wall_seconds']:.1f} s")
    if outcome.dead_letters:
        print("dead letters: " + ", ".join(f"{k}={v}" for k, v in sorted(outcome.dead_letters.items())))
    print(f"report:   {outcome.report}")
    print(f"database: {outcome.database}")
    if args.summary_json is not None:
        print(f"summary:  {args.summary_json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fusewatch`` console script."""
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so worker processes are stopped and sinks flushed on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "config":
            return _config(args)
    except FusewatchError as exc:
        print(f"fusewatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
