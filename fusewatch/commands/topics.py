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
        description="fusewatch uses eight topics under kafka.topic_prefix: the inputs vibration, frames and"
        " maintenance-logs (co-partitioned: one partition count, keys hashed with murmur2), the outputs scores,"
        " alerts and dead-letter, worker-health (the workers' event-time lag, read by the sink) and worker-state"
        " (the workers' checkpoints, compacted), all with kafka.partitions partitions. `topics create` makes the"
        " missing ones (run it again after an upgrade); `topics acls` gives a principal the rights it needs on"
        " a secured cluster.",
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
    acls = actions.add_parser(
        "acls", help="print (or, with --apply, create) the ACLs a principal needs to run fusewatch",
        description="On a cluster with an authorizer, fusewatch's principal needs READ, WRITE, CREATE, DESCRIBE and"
        " DESCRIBE_CONFIGS on its topics (kafka.topic_prefix and APP_ID*, where faust keeps its assignor topic),"
        " READ and DESCRIBE on the consumer groups APP_ID* (workers: APP_ID, sinks: APP_ID-sink), and"
        " IDEMPOTENT_WRITE on the cluster; no DELETE or ALTER. Without --apply the ACLs are printed; with it they"
        " are created, which needs an administrator's [kafka] credentials (docs/production.md).",
    )
    acls.add_argument("--principal", required=True, metavar="User:NAME",
                      help="the principal the workers, sinks and producers run as (SASL user or certificate CN)")
    acls.add_argument("--app-id", default="fusewatch", help="the workers' app id (default: fusewatch)")
    acls.add_argument("--apply", action="store_true", help="create the ACLs (as an administrator)")
    for sub, run in ((create, _create), (describe, _describe), (acls, _acls)):
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


def _acls(args: argparse.Namespace) -> int:
    from connectors.kafka.acls import acls_for, apply_acls, describe_acls

    settings = kafka_settings(args, config_of(args))
    acls = acls_for(args.principal, settings.topic_prefix, args.app_id)
    for line in describe_acls(acls):
        print(line)
    if args.apply:
        count = apply_acls(settings, acls)
        print(f"created {count} ACLs at {settings.bootstrap_servers} (existing ones are kept)")
    return 0
