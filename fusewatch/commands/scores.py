"""``fusewatch scores tail``: print scores as they arrive on the scores topic."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fusewatch.commands.common import add_config_option, add_kafka_option, config_of, kafka_settings


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("scores", help="follow the scores topic")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    tail = actions.add_parser(
        "tail", help="print scores as they arrive (Ctrl-C to stop)",
        description="Print one line per score: window end, asset, fused score, leading modality, and the"
        " per-modality contributions. Reads without a consumer group, so it never disturbs the workers.",
    )
    add_kafka_option(tail)
    add_config_option(tail)
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest score, not the newest")
    tail.add_argument("--max", type=int, default=None, metavar="N", help="stop after N scores")
    tail.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                      help="stop when no score arrived for this long")
    tail.add_argument("--json", action="store_true", help="print the scores' JSON instead of a table")
    tail.set_defaults(run=run_tail)


def format_score(score: dict[str, Any]) -> str:
    """One aligned line for a score."""
    parts = " ".join(f"{m}={v:.3f}" for m, v in sorted(score.get("contributions", {}).items()))
    leading = score.get("leading") or "-"
    return f"{score['window_end']}  {score['asset_id']:<10} fused={score['fused']:.3f}  leading={leading:<9} {parts}"


def run_tail(args: argparse.Namespace) -> int:
    from connectors.kafka.consumer import follow_topic

    settings = kafka_settings(args, config_of(args))
    records = follow_topic(settings, settings.topics().scores, from_beginning=args.from_beginning,
                           idle_exit_s=args.idle_exit)
    for count, record in enumerate(records, start=1):
        print(record.value.decode() if args.json else format_score(json.loads(record.value)), flush=True)
        if args.max is not None and count >= args.max:
            break
    return 0
