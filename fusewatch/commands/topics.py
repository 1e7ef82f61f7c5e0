"""``fusewatch topics create|describe``: lay out and check fusewatch's Kafka topics."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fusewatch.commands.common import add_config_option, add_kafka_option, config_of, kafka_settings

if TYPE_CHECKING:  # kafka-python is imported only when a topic command runs
    from connectors.kafka.admin import TopicState


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "topics",
        help="create or describe fusewatch's Kafka topics",
        description="fusewatch uses seven topics under kafka.topic_prefix: the inputs vibration, frames and"
        " maintenance-logs (co-partitioned: one partition count, keys hashed with murmur2), the outputs scores,"
        " alerts and dead-letter, and worker-health (the workers' event-time lag, read by the sink), all with"
        " kafka.partitions partitions. `topics create` makes the missing ones (run it again after an upgrade).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create the missing topics; fail if an existing one has another partition count",
        description="Create the missing topics with kafka.partitions partitions and kafka.replication_factor"
        " replicas. Existing topics are checked, not changed: a partition-count mismatch is an error.",
    )
    describe = actions.add_parser(
        "describe", help="show each topic's partitions and whether it matches the configuration (exit 1 if not)"
    )
    for sub, run in ((create, _create), (describe, _describe)):
        add_kafka_option(sub)
        add_config_option(sub)
        sub.set_defaults(run=run)


def _print_states(states: Sequence[TopicState]) -> None:
    width = max(len(state.name) for state in states)
    print(f"{'topic':<{width}}  partitions  replicas  status")
    for state in states:
        partitions = "-" if state.partitions is None else str(state.partitions)
        replicas = "-" if state.replication_factor is None else str(state.replication_factor)
        print(f"{state.name:<{width}}  {partitions:>10}  {replicas:>8}  {state.status}")


def _create(args: argparse.Namespace) -> int:
    from connectors.kafka.admin import create_topics

    settings = kafka_settings(args, config_of(args))
    _print_states(create_topics(settings))
    return 0


def _describe(args: argparse.Namespace) -> int:
    from connectors.kafka.admin import describe_topics

    settings = kafka_settings(args, config_of(args))
    states = describe_topics(settings)
    _print_states(states)
    problems = [problem for state in states if (problem := state.problem(settings)) is not None]
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0
