"""``fusewatch record``: the input topics of a time range into files (docs/replay.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fusewatch.commands.common import (
    add_config_option,
    add_kafka_option,
    add_time_range_options,
    config_of,
    kafka_settings,
)


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "record", help="write the input topics of a time range to files (a recording to replay or backtest)",
        description="Write every message of the vibration, frames and maintenance-logs topics between FROM and TO"
        " (record timestamps = event time) to OUT: waveforms in columns (.npz), frames as image files in a tar,"
        " log entries as JSON lines, with a manifest of SHA-256 checksums. Reads without a consumer group. An"
        " interrupted recording keeps its complete parts: run the same command again to finish it. See"
        " docs/replay.md for the format.",
    )
    add_kafka_option(parser)
    add_config_option(parser)
    add_time_range_options(parser, "the range to record")
    parser.add_argument("--out", type=Path, required=True, help="the recording directory (created, or resumed)")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.kafka.record import record

    settings = kafka_settings(args, config_of(args))
    result = record(settings, args.start, args.end, args.out, progress=not args.no_progress)
    verb = "resumed and finished" if result.resumed else "recorded"
    print(f"{verb} {result.directory}: {result.messages} messages in this run, {result.total} in the recording")
    return 0
