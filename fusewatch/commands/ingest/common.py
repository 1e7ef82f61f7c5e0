"""Options and set-up every bridge shares: Kafka, the plant file, health, features at the edge."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fusewatch.commands.common import add_config_option, add_kafka_option, config_of, kafka_settings

if TYPE_CHECKING:
    from connectors.ingest.gateway import KafkaGateway
    from fusewatch.core.plant import Plant


def add_bridge_options(parser: argparse.ArgumentParser, plant_required: bool) -> None:
    """``--kafka``, ``--config``, ``--plant``, ``--health-port``, ``--health-every``, ``--edge-features``."""
    add_kafka_option(parser)
    add_config_option(parser)
    parser.add_argument("--plant", type=Path, required=plant_required, default=None, metavar="FILE",
                        help="the plant file (docs/connect-a-plant.md): assets, their streams and bearings"
                        + ("" if plant_required else "; without one, any asset id of the topic template is taken"))
    parser.add_argument("--health-port", type=int, default=None, metavar="PORT",
                        help="serve the bridge's health as JSON on http://127.0.0.1:PORT/health (200 healthy, 503 not)")
    parser.add_argument("--health-every", type=float, default=30.0, metavar="S",
                        help="log a health line every S seconds (default: 30)")
    parser.add_argument("--edge-features", action="store_true",
                        help="compute the vibration features here and publish them instead of the waveform"
                        " (docs/edge-features.md); needs the assets' bearings from --plant for the envelope lines")


def load_plant_of(args: argparse.Namespace) -> Plant | None:
    from fusewatch.core.plant import load_plant

    return None if args.plant is None else load_plant(args.plant)


def open_gateway(args: argparse.Namespace, role: str, plant: Plant | None) -> KafkaGateway:
    """The Kafka gateway of a bridge: ``--kafka`` / ``[kafka]`` settings, with features at the edge if asked."""
    from connectors.ingest.gateway import KafkaGateway, Transform

    settings = kafka_settings(args, config_of(args))
    transform: Transform | None = None
    if args.edge_features:
        from connectors.ingest.edge import EdgeFeatures

        transform = EdgeFeatures.for_registry(None if plant is None else plant.registry()).convert
    return KafkaGateway(settings, role, transform=transform)
