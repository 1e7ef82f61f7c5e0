"""``fusewatch simulate --kafka``: stream the plant simulator into Kafka."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from fusewatch.commands.common import (
    add_config_option,
    add_kafka_option,
    config_of,
    kafka_settings,
    plant_speed,
    positive_float,
    positive_int,
)
from fusewatch.core.errors import FusewatchError


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "simulate",
        help="stream a simulated plant into the Kafka input topics",
        description="Simulate ASSETS pumps and motors for DAYS of plant time and publish their vibration"
        " snapshots, camera frames and maintenance logs to the input topics (wire format v1, keyed by asset id,"
        " record timestamp = event time). --speed 1 sends them as the plant would, --speed 60 sixty times faster,"
        " --speed max as fast as the broker takes them. The topics must exist (`fusewatch topics create`).",
    )
    add_kafka_option(parser)
    parser.add_argument("--assets", type=positive_int, default=6, help="number of simulated assets (default: 6)")
    parser.add_argument("--days", type=positive_float, default=1.0, help="days of plant time (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated plant (default: 0)")
    parser.add_argument(
        "--speed", type=plant_speed, default=1.0, metavar="X|max",
        help="plant seconds per wall second, or max (default: 1, real time)",
    )
    parser.add_argument(
        "--start", default=None, metavar="TIME",
        help="event time of the first snapshot, RFC 3339 (default: so that plant time ends when the run does)",
    )
    parser.add_argument("--assets-file", type=Path, default=None, metavar="FILE",
                        help="also write the simulated assets' registry (for `fusewatch worker --assets-file`)")
    add_config_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.kafka.admin import check_topics
    from connectors.kafka.producer import EventProducer
    from connectors.kafka.simulate import default_start_ns, stream_plant
    from connectors.sources.simulator import PlantSimulator, SimulatorConfig
    from fusewatch.core.timeutil import format_time, parse_time

    settings = kafka_settings(args, config_of(args))
    try:
        if args.start is None:
            start = default_start_ns(time.time_ns(), args.days, args.speed)
        else:
            start = parse_time(args.start)
        simulator = PlantSimulator(SimulatorConfig(assets=args.assets, days=args.days, seed=args.seed, start_ns=start))
    except ValueError as exc:
        raise FusewatchError(f"simulator: {exc}") from None
    check_topics(settings, settings.topics().inputs)
    if args.assets_file is not None:
        simulator.asset_registry().save(args.assets_file)
    print(
        f"simulating {args.assets} assets x {args.days:g} days from {format_time(start)} into"
        f" {settings.bootstrap_servers} ({settings.topic_prefix}*)"
    )
    with EventProducer(settings) as producer:
        result = stream_plant(simulator, producer, args.speed, progress=not args.no_progress)
    print(result.summary())
    for topic, count in sorted(result.per_topic.items()):
        print(f"  {topic}: {count}")
    return 0
