"""``fusewatch alerts ack|maintenance``: an operator's instructions to the alert policy, through Kafka."""

from __future__ import annotations

import argparse
import getpass
import time
from typing import Any

from fusewatch.commands.common import add_config_option, add_kafka_option, config_of, event_time, kafka_settings
from fusewatch.core.errors import FusewatchError
from fusewatch.core.events import MaintenanceLog, make_event
from fusewatch.core.timeutil import format_time


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "alerts", help="acknowledge an asset's alert, or declare a maintenance window (no alerts during it)",
        description="Publish an operator's instruction to the asset's maintenance-log stream, where the workers"
        " apply it in order with the asset's data: the alert transition (`acknowledged`) goes out on the alerts"
        " topic like any other, and the entry is stored with the log (docs/alerts.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ack = actions.add_parser("ack", help="acknowledge the asset's open alert (it stops escalating)",
                             description="Acknowledge ASSET's open alert: the policy records an `acknowledged`"
                             " transition and the alert no longer escalates; it still closes by itself.")
    maintenance = actions.add_parser(
        "maintenance", help="declare planned work on an asset: no alert opens from --from to --to",
        description="Declare a maintenance window for ASSET: from FROM to TO no alert opens (the policy reports a"
        " `suppressed` transition once instead); an alert already open stays open.")
    for sub in (ack, maintenance):
        sub.add_argument("asset", metavar="ASSET", help="the asset id")
        add_kafka_option(sub)
        add_config_option(sub)
        sub.add_argument("--by", default=None, help="who (default: the login name)")
        sub.add_argument("--note", default="", help="a note for the log")
    ack.add_argument("--at", type=event_time, default=None, metavar="TIME", help="event time (default: now)")
    maintenance.add_argument("--from", dest="start", type=event_time, default=None, metavar="TIME",
                             help="start (RFC 3339; default: now)")
    maintenance.add_argument("--to", dest="end", type=event_time, required=True, metavar="TIME", help="end (RFC 3339)")
    ack.set_defaults(run=run)
    maintenance.set_defaults(run=run)


def instruction(args: argparse.Namespace, now_ns: int) -> MaintenanceLog:
    """The log entry that carries the instruction."""
    author = args.by or getpass.getuser()
    note = f": {args.note}" if args.note else ""
    if args.action == "ack":
        ts = args.at if args.at is not None else now_ns
        return make_event(MaintenanceLog, asset_id=args.asset, ts=ts, text=f"alert acknowledged by {author}{note}",
                          author=author, action="acknowledge")
    start = args.start if args.start is not None else now_ns
    if args.end <= start:
        raise FusewatchError(f"--to {format_time(args.end)} is not after the start {format_time(start)}")
    return make_event(MaintenanceLog, asset_id=args.asset, ts=start, author=author, action="maintenance",
                      until=args.end, text=f"planned maintenance until {format_time(args.end)} ({author}){note}")


def run(args: argparse.Namespace) -> int:
    from connectors.kafka.producer import EventProducer

    settings = kafka_settings(args, config_of(args))
    entry = instruction(args, time.time_ns())
    with EventProducer(settings) as producer:
        producer.send(entry)
    print(f"published to {settings.topics().maintenance_logs}: {entry.asset_id} {entry.action} at"
          f" {format_time(entry.ts)}: {entry.text}")
    return 0
