"""``fusewatch replay``: a recording or a Kafka time range back into input topics, in event time."""

from __future__ import annotations

import argparse
from typing import Any

from fusewatch.commands.common import (
    add_config_option,
    add_kafka_option,
    add_time_range_options,
    config_of,
    kafka_settings,
    plant_speed,
)


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "replay", help="replay history (a recording or a Kafka time range) into input topics at 1x, Nx or max",
        description="Publish the input messages of SOURCE between FROM and TO again, each with its key, bytes,"
        " event time and partition, at SPEED times plant time (1 = as the plant sent them) or as fast as possible."
        " --into backtest (the default) writes to topics of their own, <prefix>backtest.<RUN_ID>.*, and prints the"
        " worker command that scores them under RUN_ID: the live workers, their state and the live scores are"
        " untouched. --into live writes to the deployment's input topics (e.g. to load a recording into a new"
        " deployment). See docs/replay.md.",
    )
    parser.add_argument("--source", required=True, metavar="kafka|DIR",
                        help="`kafka` (the live input topics) or a recording directory made by `fusewatch record`")
    add_kafka_option(parser)
    add_config_option(parser)
    add_time_range_options(parser, "the range to replay")
    parser.add_argument("--speed", type=plant_speed, default=None, metavar="1|N|max",
                        help="times plant time, or max (default: max)")
    parser.add_argument("--into", choices=("backtest", "live"), default="backtest",
                        help="backtest topics of their own (default), or the live input topics")
    parser.add_argument("--run-id", default=None,
                        help="the backtest run's id (default: replay-<UTC time>); names its topics")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from connectors.kafka.history import open_history
    from connectors.kafka.replay import replay, target_settings

    settings = kafka_settings(args, config_of(args))
    run_id = args.run_id or time.strftime("replay-%Y%m%dT%H%M%S", time.gmtime())
    history = open_history(args.source, args.start, args.end, settings)
    result = replay(history, settings, args.into, run_id, args.speed, progress=not args.no_progress)
    print(f"replayed {history.description}: {result.summary()}")
    if args.into == "backtest":
        target = target_settings(settings, "backtest", run_id)
        print(f"topics: {target.topic_prefix}*; score them with:\n"
              f"  FUSEWATCH_KAFKA__TOPIC_PREFIX={target.topic_prefix} fusewatch worker --app-id"
              f" fusewatch-{run_id} --run-id {run_id} --workdir backtest-{run_id}")
    return 0
