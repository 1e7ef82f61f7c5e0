"""``fusewatch ingest opcua``: OPC UA subscriptions to the plant file's nodes → the Kafka input topics."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from fusewatch.commands.ingest.common import add_bridge_options, load_plant_of, open_gateway
from fusewatch.core.errors import ConfigError

log = logging.getLogger(__name__)


def register(bridges: Any) -> None:
    parser: argparse.ArgumentParser = bridges.add_parser(
        "opcua",
        help="subscribe to the plant's OPC UA nodes (vibration arrays, images, log texts) and publish them to Kafka",
        description="Open a session with the plant's OPC UA server ([opcua] of the plant file, or --opcua) and"
        " subscribe to every node its streams name: a Float or Double array per vibration snapshot (sample rate"
        " from sample_rate_hz or sample_rate_node), a ByteString JPEG/PNG image per camera frame, a String per"
        " maintenance-log entry. Each value becomes a wire-format v1 event keyed by asset whose event time is the"
        " value's source timestamp; unreadable values (wrong type, empty array, NaN, not an image) go to the"
        " dead-letter topic with the reason and opc.tcp://HOST:PORT#<node id>. A lost session is re-opened with"
        " backoff, subscriptions included; while Kafka is away the subscription's publishing is paused and the"
        " server queues --queue-size values per node. Security (Basic256Sha256 etc., Sign or SignAndEncrypt with"
        " the client's certificate and key) and the user's password (password_env or password_file) come from"
        " the plant file. Stop with Ctrl-C or SIGTERM. See docs/ingest-opcua.md.",
    )
    add_bridge_options(parser, plant_required=True)
    parser.add_argument("--opcua", default=None, metavar="URL",
                        help="the server's endpoint, opc.tcp://HOST:PORT[/path] (default: [opcua] url of the plant"
                        " file); only the streams on this server are read")
    parser.add_argument("--queue-size", type=int, default=10, metavar="N",
                        help="values per node the server keeps between publishes or while publishing is paused"
                        " (MonitoringParameters.QueueSize, default: 10)")
    parser.add_argument("--max-pending", type=int, default=200, metavar="N",
                        help="pause the subscription's publishing while N values wait for Kafka (default: 200)")
    parser.add_argument("--timeout", type=float, default=4.0, metavar="S",
                        help="seconds an OPC UA request may take, also the keepalive probe's (default: 4)")
    parser.add_argument("--backoff-max", type=float, default=30.0, metavar="S",
                        help="longest wait between reconnection attempts; it starts at 1 s and doubles (default: 30)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.ingest.health import BridgeHealth
    from connectors.ingest.opcua import OpcuaBridge
    from connectors.ingest.opcua_values import watched_nodes
    from fusewatch.core.plant import Opcua

    plant = load_plant_of(args)
    assert plant is not None  # --plant is required
    if plant.opcua is None and args.opcua is None:
        raise ConfigError(f"{args.plant}: no [opcua] table (its url) and no --opcua URL")
    opcua = plant.opcua if plant.opcua is not None else Opcua(url=args.opcua)
    url = args.opcua or opcua.url
    if not url.startswith("opc.tcp://"):
        raise ConfigError(f"--opcua must start with opc.tcp://, got {url!r}")
    nodes = watched_nodes(plant, url)
    gateway = open_gateway(args, "opcua-bridge", plant)
    health = BridgeHealth("opcua", gateway.stats)
    bridge = OpcuaBridge(opcua, nodes, gateway, health, url=url, queue_size=args.queue_size,
                         max_pending=args.max_pending, timeout_s=args.timeout, backoff_max_s=args.backoff_max)
    health.start(args.health_port, args.health_every)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await bridge.run(stop)

    try:
        asyncio.run(main())
    finally:
        health.stop()
        gateway.close()
        log.info("%s", health.line())
    return 0
