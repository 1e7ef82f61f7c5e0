"""``fusewatch sink``: the output topics into InfluxDB and alert webhooks, offsets committed after the write."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from typing import Any

from fusewatch.commands.common import (
    add_config_option,
    add_influx_options,
    add_kafka_option,
    add_webhook_options,
    config_of,
    kafka_settings,
    open_influx,
    positive_float,
    positive_int,
    webhook_endpoints,
)
from fusewatch.core.errors import FusewatchError


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "sink",
        help="write the workers' scores and alerts to InfluxDB and deliver alert webhooks (Kafka consumer)",
        description="Consume the scores, alerts, dead-letter and maintenance-logs topics as a member of the"
        " consumer group GROUP; write scores, vibration features, alert transitions, maintenance-log entries and"
        " pipeline health to InfluxDB, and put alert transitions into the webhook outbox, before committing the"
        " offsets. While InfluxDB is down, consumption pauses and the write is retried with backoff: nothing is"
        " dropped. Several sinks of one group share the partitions. Stop with Ctrl-C or SIGTERM. See"
        " docs/influxdb.md and docs/webhooks.md.",
    )
    add_kafka_option(parser)
    add_config_option(parser)
    add_influx_options(parser, "write scores, features, alerts, log entries and pipeline health")
    add_webhook_options(parser)
    parser.add_argument("--group", default="fusewatch-sink", help="consumer group of the sinks (default:"
                        " fusewatch-sink)")
    parser.add_argument("--worker-group", default="fusewatch", metavar="APP_ID",
                        help="the workers' app id, whose input lag the health points report (default: fusewatch)")
    parser.add_argument("--outbox", type=Path, default=Path("fusewatch-sink/webhooks.sqlite"),
                        help="the durable webhook outbox (default: ./fusewatch-sink/webhooks.sqlite)")
    parser.add_argument("--batch", type=positive_int, default=2000, help="messages per write (default: 2000)")
    parser.add_argument("--health-interval", type=positive_float, default=10.0, metavar="SECONDS",
                        help="seconds between pipeline-health points (default: 10)")
    parser.add_argument("--stop-when-idle", type=positive_float, default=None, metavar="SECONDS",
                        help="exit once nothing new arrived for SECONDS and everything is written (backfills)")
    parser.add_argument("--stats-json", type=Path, default=None, help="write the agent's counters here at exit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.kafka.admin import check_topics, topic_names
    from connectors.kafka.sink_agent import SinkAgent, SinkOptions
    from connectors.webhooks.delivery import WebhookSender

    config = config_of(args)
    settings = kafka_settings(args, config)
    endpoints = webhook_endpoints(args, config)
    if not (args.influx or config.influx.url) and not endpoints:
        raise FusewatchError("nothing to do: give --influx URL (or influx.url), or webhooks (--webhook or"
                             " [[webhooks]])")
    check_topics(settings, topic_names(settings))
    influx = open_influx(args, config)
    sender = None
    if endpoints:
        args.outbox.parent.mkdir(parents=True, exist_ok=True)
        sender = WebhookSender(endpoints, args.outbox)
        sender.start()
    options = SinkOptions(group=args.group, worker_group=args.worker_group, batch_messages=args.batch,
                          health_interval_s=args.health_interval, stop_when_idle_s=args.stop_when_idle)
    agent = SinkAgent(settings, influx, sender, options)
    signal.signal(signal.SIGTERM, lambda signum, frame: agent.stop())
    try:
        stats = agent.run()
    except KeyboardInterrupt:
        stats = agent.stats
    finally:
        agent.close()
        if sender is not None:
            sender.stop()
        if influx is not None:
            influx.close()
    summary = json.dumps(stats.as_dict(), sort_keys=True)
    print(f"sink: {summary}")
    if args.stats_json is not None:
        args.stats_json.write_text(summary + "\n", encoding="utf-8")
    return 0
