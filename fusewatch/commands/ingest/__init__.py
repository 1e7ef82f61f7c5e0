"""``fusewatch ingest mqtt|opcua|camera``: bridges from plant protocols into the Kafka input topics."""

from __future__ import annotations

import argparse
from typing import Any

from fusewatch.commands.ingest import camera, mqtt, opcua


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "ingest",
        help="bridge a plant protocol (MQTT, OPC UA, camera snapshots) into the Kafka input topics",
        description="Run a bridge that reads a plant's streams where they are (an MQTT broker, an OPC UA server,"
        " IP cameras' snapshot URLs) and publishes them to fusewatch's Kafka input topics in wire format v1, keyed"
        " by asset, with the source's event time. The source is acknowledged only after Kafka has the message"
        " (at-least-once); unreadable payloads go to the dead-letter topic with the reason and where they came"
        " from. See docs/connect-a-plant.md.",
    )
    bridges = parser.add_subparsers(title="bridges", dest="bridge", metavar="BRIDGE", required=True)
    for bridge in (mqtt, opcua, camera):
        bridge.register(bridges)
