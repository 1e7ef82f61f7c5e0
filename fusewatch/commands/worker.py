"""``fusewatch worker``: one member of the distributed stream processor (faust-streaming on Kafka)."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from typing import Any

from fusewatch.commands.common import (
    add_assets_options,
    add_config_option,
    add_kafka_option,
    asset_registry,
    kafka_settings,
    positive_int,
    scoring_config_of,
)


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "worker",
        help="run one stream-processing worker on Kafka (start several to share the partitions)",
        description="Consume the three input topics as a member of the consumer group APP_ID, align and score"
        " the assets of the partitions assigned to this worker with the same processor as `fusewatch demo`, and"
        " write scores, alert transitions and dead letters to their topics. Each partition's state is checkpointed"
        " with the input offsets it covers to the compacted worker-state topic, so a worker on any host that takes"
        " a partition over resumes its state (WORKDIR/checkpoints keeps a local copy, used only when it matches"
        " the topic). Stop with Ctrl-C or SIGTERM. See docs/worker.md.",
    )
    add_kafka_option(parser)
    parser.add_argument("--workdir", type=Path, default=Path("fusewatch-worker"),
                        help="faust's data and the local copy of the checkpoints (default: ./fusewatch-worker)")
    add_config_option(parser)
    parser.add_argument("--app-id", default="fusewatch", help="consumer group of the workers (default: fusewatch)")
    parser.add_argument("--run-id", default="live", help="run id put on every score and alert (default: live)")
    add_assets_options(parser)
    parser.add_argument("--web-port", type=int, default=None,
                        help="serve health and lag as JSON on 127.0.0.1:PORT/fusewatch/health/")
    parser.add_argument("--checkpoint-every", type=positive_int, default=2000,
                        help="messages between checkpoints of a partition (default: 2000; also every 5 s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import faust

    from connectors.kafka.admin import check_topics, topic_names
    from connectors.kafka.state_store import KafkaCheckpointStore
    from fusewatch.config import to_toml
    from streams.checkpoint import config_digest
    from streams.runners.worker import Worker
    from streams.runners.worker_options import WorkerOptions

    config = scoring_config_of(args)
    settings = kafka_settings(args, config)
    check_topics(settings, topic_names(settings))
    registry = asset_registry(args)
    options = WorkerOptions(
        app_id=args.app_id, run_id=args.run_id, workdir=args.workdir, checkpoint_every=args.checkpoint_every,
        web_port=args.web_port, registry=registry, config_digest=config_digest(to_toml(config)),
    )
    store = KafkaCheckpointStore(settings, args.app_id, writer=f"{args.app_id}@{socket.gethostname()}:{os.getpid()}",
                                 cache_dir=args.workdir / "checkpoints")
    worker = Worker(config.streams, settings, options, store=store)
    # The CLI has configured logging (--log-level). faust's own set-up would add a spinner handler at DEBUG and
    # lower the root logger to DEBUG, so every debug call of aiokafka and faust (one per message sent) would
    # build a log record that is then thrown away: about 1.5 % of a worker's time in the profile.
    try:
        faust.Worker(worker.app, quiet=True, override_logging=False).execute_from_commandline()
    finally:
        store.close()
    return 0
