"""``fusewatch backtest``: score recorded history with a candidate configuration, and ``backtest compare``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusewatch.commands.common import (
    add_assets_options,
    add_config_option,
    add_kafka_option,
    add_time_range_options,
    asset_registry,
    kafka_settings,
    scoring_config_of,
)
from fusewatch.core.errors import ConfigError

if TYPE_CHECKING:
    from fusewatch.backtest.store import StoredRun
    from fusewatch.config import FusewatchConfig

DESCRIPTION = """\
Score recorded history (the three input topics over a time range, read from Kafka or from a recording
directory made by `fusewatch record`) with a candidate configuration, under its own run id, exactly as a
worker would: the same messages in the same order, bad messages becoming dead letters. Then measure
detection quality against labelled faults, per asset and overall, with the modality ablation (every single
modality and fusion method replayed over the same windows), and write a report directory.

Labels: by default the maintenance-log entries of the history whose kind is `failure` (fault start unknown:
[models] label_horizon_hours before the failure); or --labels FILE, a CSV `asset_id,fault_start,failure`
(RFC 3339 UTC; failure empty = still ongoing).

Metrics (docs/backtest.md): faults detected (an alert opened between fault start and failure), lead time
(failure - that first alert; a missed fault counts 0 h in the median), false alarms per asset-day (alerts
opened outside every labelled fault), alerts opened, window ROC AUC and PR AUC.

The report directory holds summary.json, windows.npz, alerts.json, methods_summary.png, report.html and,
written last, run.json: a directory without run.json is an incomplete run.

  fusewatch backtest --source rec/ --from 2026-01-05T00:00:00Z --to 2026-01-19T00:00:00Z \\
      --config candidate.toml --report out/backtest/candidate
  fusewatch backtest compare out/backtest/baseline out/backtest/candidate
"""


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "backtest", help="score recorded history with a candidate configuration and measure it (`backtest compare`)",
        usage="fusewatch backtest --source kafka|DIR --report DIR [--from T1] [--to T2] [options]\n"
              "       fusewatch backtest compare RUN_A RUN_B [--out DIR]",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", metavar="kafka|DIR",
                        help="where the history is: `kafka` (the input topics) or a recording directory (required)")
    add_time_range_options(parser, "the history to score")
    add_config_option(parser)
    parser.add_argument("--labels", type=Path, default=None, metavar="FILE",
                        help="CSV asset_id,fault_start,failure of labelled faults (default: DIR/labels.csv of a"
                        " recording when `fusewatch import labels` put one there, else failure log entries)")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR", help="report directory (required)")
    parser.add_argument("--summary-json", type=Path, default=None, metavar="FILE",
                        help="also write the summary JSON here (it is always in the report directory)")
    parser.add_argument("--run-id", default=None, metavar="ID",
                        help="run id of the scores and alerts (default: backtest-<UTC yyyymmddThhmmss>)")
    add_kafka_option(parser)
    add_assets_options(parser)
    parser.add_argument(
        "--compare-bundle", type=Path, default=None, metavar="DIR",
        help="score the history twice, per-asset models only (REPORT/per-asset) and with the model bundle DIR"
        " (REPORT/bundle), and print them side by side as `backtest compare` does, with the hours from an asset's"
        " first message to its first possible alert",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    actions = parser.add_subparsers(dest="backtest_action", metavar="compare", required=False)
    compare = actions.add_parser(
        "compare", help="compare two backtest runs side by side",
        description="Compare two complete backtest report directories: print one row per method with ROC AUC,"
        " PR AUC, median lead time, false alarms per asset-day, faults detected and alerts opened for A, B and"
        " B-A, and write an HTML report with both runs' traces per asset overlaid and a summary plot.",
    )
    compare.add_argument("run_a", type=Path, metavar="RUN_A", help="report directory of the first run (A)")
    compare.add_argument("run_b", type=Path, metavar="RUN_B", help="report directory of the second run (B)")
    compare.add_argument("--out", type=Path, default=None, metavar="DIR",
                         help="folder of compare.html (default: RUN_B/compare-<run id of A>)")
    parser.set_defaults(run=run, backtest_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.backtest_action == "compare":
        return run_compare(args)
    missing = [option for option, value in (("--source", args.source), ("--report", args.report)) if value is None]
    if missing:
        args.backtest_parser.error(f"the following arguments are required: {', '.join(missing)}")
    return run_backtest_command(args)


def run_backtest_command(args: argparse.Namespace) -> int:
    from fusewatch.evaluation.outcomes import format_table

    config = scoring_config_of(args)
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise ConfigError("--to must be after --from")
    if args.labels is None and args.source not in (None, "kafka") and (Path(args.source) / "labels.csv").is_file():
        args.labels = Path(args.source) / "labels.csv"  # imported with the recording (`fusewatch import labels`)
    run_id = args.run_id or f"backtest-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    if args.compare_bundle is not None:
        return compare_bundle(args, config, run_id)
    stored = score_history(args, config, run_id, args.report)
    details = stored.summary["details"]
    print(format_table(stored.summary["rows"]))
    print()
    print(format_table(details["assets"]) if details["assets"] else "(no windows scored)")
    letters = details["dead_letters"]
    print(f"\nrun {run_id}: {details['messages']} messages, {details['windows']} windows, "
          f"{details['alert_transitions']} alert transitions, {letters['count']} dead letters"
          + (" (" + ", ".join(f"{k} {v}" for k, v in letters["by_reason"].items()) + ")" if letters["count"] else ""))
    print(f"labels: {details['labels']}, {len(details['events'])} event(s)")
    if args.summary_json is not None:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text((args.report / "summary.json").read_text(encoding="utf-8"), encoding="utf-8")
        print(f"summary: {args.summary_json}")
    print(f"report:  {args.report / 'report.html'}")
    return 0


def score_history(args: argparse.Namespace, config: FusewatchConfig, run_id: str, report: Path) -> StoredRun:
    """Score the history of ``args`` with ``config`` and write the report directory; the stored run."""
    from connectors.kafka.history import open_history
    from fusewatch.backtest.report import run_report_html, summary_plot
    from fusewatch.backtest.run import run_backtest, summarize
    from fusewatch.backtest.store import write_run
    from fusewatch.core.timeutil import NS_PER_HOUR
    from fusewatch.evaluation.labels import read_labels_csv

    horizon = int(config.models.label_horizon_hours * NS_PER_HOUR)
    labels = read_labels_csv(args.labels, horizon) if args.labels is not None else None
    settings = kafka_settings(args, config) if args.source == "kafka" else None
    history = open_history(args.source, args.start, args.end, settings)
    total = history.count() if not args.no_progress else None
    outcome = run_backtest(history.recorded(), config, run_id, registry=asset_registry(args), labels=labels,
                           progress=not args.no_progress, total=total, source=history.description,
                           requested=(args.start, args.end), labels_from=f"labels file {args.labels}")
    return write_run(outcome, summarize(outcome), report, run_report_html, summary_plot)


def compare_bundle(args: argparse.Namespace, config: FusewatchConfig, run_id: str) -> int:
    """The history scored per-asset only and with ``--compare-bundle``, side by side (``backtest compare``)."""
    from fusewatch.backtest.report import format_compare, write_compare
    from models.bundle import load_bundle

    bundle = load_bundle(args.compare_bundle)  # a damaged bundle stops here, before the history is read
    runs = []
    for label, path in (("per-asset", None), ("bundle", args.compare_bundle)):
        models = config.models.model_copy(update={"bundle": path})
        runs.append(score_history(args, config.model_copy(update={"models": models}), f"{run_id}-{label}",
                                  args.report / label))
    print(f"A = per-asset models only, B = with bundle {bundle.version}")
    per_asset, with_bundle = runs
    print(format_compare(per_asset, with_bundle))
    first = [run.summary["details"].get("first_alertable_hours") for run in runs]
    print(f"\nfirst possible alert after an asset's first message (hours, median over assets): {first[0]} | {first[1]}")
    print(f"runs: {args.report / 'per-asset'}, {args.report / 'bundle'}")
    print(f"compare report: {write_compare(per_asset, with_bundle, args.report)}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from fusewatch.backtest.report import format_compare, write_compare
    from fusewatch.backtest.store import load_run

    first, second = load_run(args.run_a), load_run(args.run_b)
    out = args.out or args.run_b / f"compare-{first.run_id}"
    print(format_compare(first, second))
    path = write_compare(first, second, out)
    print(f"\ncompare report: {path}")
    return 0
