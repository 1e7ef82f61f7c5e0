"""``fusewatch sweep``: detection over many seeds of a simulated fleet, per fault type and first modality."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fusewatch.commands.common import add_config_option, scoring_config_of
from fusewatch.core.errors import ConfigError

DESCRIPTION = """\
Score one simulated fleet per seed through the streaming pipeline, replay the fusion method's alerts, and report
every fault: found before failure or not, the lead time, and for a miss why (the fused and per-modality peaks
during the fault). The figures are grouped by fault type and first modality, with the false alarms per asset
and per asset-day (docs/models.md, "Detection sweep").

Each seed's outcome is kept in OUT/seeds/seed-S.json. A seed already there under the same settings (models,
alerts, fleet, method) is not scored again, so a sweep stopped midway resumes where it stopped, and seeds can
be added later. The report goes to OUT/report.md and OUT/sweep.json, a plot of the lead times per group to
OUT/sweep.png. A seed of 8 assets x 21 days takes about seven minutes on two cores.

example:
  fusewatch sweep --seeds 0-19 --assets 8 --days 21 --out out/sweep
"""


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "sweep", help="detection over many seeds of a simulated fleet, per fault type and first modality",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", default="0-19", help="the seeds, e.g. 0-19 or 3,5,7-9 (default: 0-19)")
    parser.add_argument("--assets", type=int, default=8, help="assets per fleet (default: 8)")
    parser.add_argument("--days", type=float, default=21.0, help="days of plant time per fleet (default: 21)")
    parser.add_argument("--fleet", choices=("simulated", "new-assets"), default="simulated",
                        help="the simulator's default fleet, or new machines whose faults start in their first day")
    parser.add_argument("--method", default=None,
                        help="the fusion method whose alerts are counted (default: [models] fusion)")
    parser.add_argument("--out", type=Path, default=Path("out/sweep"), help="folder of the results (default:"
                        " out/sweep)")
    parser.add_argument(
        "--records", type=Path, default=None, metavar="DIR",
        help="keep each seed's scored windows in DIR (named by the seed and a fingerprint of the models, alerts and"
        " fleet), and read them from there when present: another --method then replays them without running the"
        " models again; also the data to train and compare fusion methods on",
    )
    add_config_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not draw progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.sources.simulator import SimulatorConfig
    from fusewatch.scenarios.new_assets import new_fleet
    from fusewatch.scenarios.plots import SWEEP_PLOT, plot_sweep
    from fusewatch.scenarios.sweep import format_report, parse_seeds, sweep
    from streams.fusion_stage import METHODS

    config = scoring_config_of(args)
    seeds = parse_seeds(args.seeds)
    method = args.method or config.models.fusion
    if method not in METHODS:
        raise ConfigError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if args.assets < 1 or args.days <= 0:
        raise ConfigError("--assets must be at least 1 and --days above 0")

    def simulated(assets: int, days: float, seed: int) -> SimulatorConfig:
        return SimulatorConfig(assets=assets, days=days, seed=seed)

    def report_seed(document: dict[str, Any], reused: bool) -> None:
        found = sum(fault["found"] for fault in document["faults"])
        origin = "kept from an earlier run" if reused else f"{document['wall_seconds']} s"
        print(f"seed {document['seed']}: {found}/{len(document['faults'])} faults found, "
              f"{sum(document['false_alarms'].values())} false alarms ({origin})", flush=True)

    fleet = new_fleet if args.fleet == "new-assets" else simulated
    report = sweep(seeds, args.out, config, method, fleet, args.assets, args.days, args.fleet,
                   progress=not args.no_progress, on_seed=report_seed, records=args.records)
    title = (f"Detection sweep: {args.fleet} fleet, {len(seeds)} seeds x {args.assets} assets x {args.days:g} days,"
             f" {method}")
    text = format_report(report, title)
    (args.out / "report.md").write_text(text)
    (args.out / "sweep.json").write_text(json.dumps({"title": title, **report}, indent=1) + "\n")
    plot_sweep(report["groups"], title, args.out / SWEEP_PLOT)
    print(text)
    print(f"report: {args.out / 'report.md'}, {args.out / 'sweep.json'}, plot: {args.out / SWEEP_PLOT}")
    return 0
