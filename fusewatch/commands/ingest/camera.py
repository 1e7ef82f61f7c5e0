"""``fusewatch ingest camera``: IP cameras' JPEG snapshot URLs polled into the frames topic."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from fusewatch.commands.common import positive_float, positive_int
from fusewatch.commands.ingest.common import add_bridge_options, load_plant_of, open_gateway

log = logging.getLogger(__name__)


def register(bridges: Any) -> None:
    parser: argparse.ArgumentParser = bridges.add_parser(
        "camera",
        help="poll the plant's IP cameras (JPEG snapshot URLs) into the frames topic",
        description="Poll every camera of the plant file with source = \"http\" at its interval_s: a GET of its"
        " snapshot URL (as IP cameras serve image/jpeg, e.g. /axis-cgi/jpg/image.cgi) with its basic or digest"
        " authentication (password from password_env or password_file) and timeout_s. Each good JPEG becomes a"
        " camera frame of its asset on the frames topic, with the camera's own time (X-Timestamp header, EXIF"
        " DateTimeOriginal with its offset, Last-Modified) or else the moment it was asked. Bodies that are not a"
        " whole JPEG go to the dead-letter topic with the reason and the camera URL (never the bytes); HTTP"
        " errors, authentication failures and timeouts are reported in the health endpoint and the log, and the"
        " camera is polled less often (exponential backoff) until it answers again; the other cameras go on."
        " While Kafka does not acknowledge, each camera keeps its newest --buffer snapshots. Stop with Ctrl-C or"
        " SIGTERM. See docs/ingest-camera.md.",
    )
    add_bridge_options(parser, plant_required=True)
    parser.add_argument("--only", nargs="+", default=None, metavar="CAMERA_ID",
                        help="poll only these cameras (their id in the plant file); default: every http camera")
    parser.add_argument("--buffer", type=positive_int, default=100, metavar="N",
                        help="snapshots kept per camera while Kafka does not acknowledge; the oldest are dropped"
                        " (counted in health) beyond N (default: 100)")
    parser.add_argument("--max-backoff", type=positive_float, default=60.0, metavar="S",
                        help="longest wait between polls of a failing camera (default: 60)")
    parser.add_argument("--max-skew", type=positive_float, default=600.0, metavar="S",
                        help="a camera's own timestamp is used only within S seconds of the request time; else the"
                        " request time is the event time (default: 600)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.ingest.camera import CameraBridge, http_cameras
    from connectors.ingest.health import BridgeHealth

    plant = load_plant_of(args)
    assert plant is not None  # --plant is required
    cameras = http_cameras(plant, args.only)
    gateway = open_gateway(args, "ingest-camera", plant)
    health = BridgeHealth("camera", gateway.stats)
    bridge = CameraBridge(cameras, gateway, health, buffer=args.buffer, max_backoff_s=args.max_backoff,
                          max_skew_s=args.max_skew)
    signal.signal(signal.SIGTERM, lambda signum, frame: bridge.stop())
    health.start(args.health_port, args.health_every)
    log.info("camera bridge: polling %s", ", ".join(f"{camera.id} ({asset_id})" for asset_id, camera in cameras))
    try:
        bridge.run()
    except KeyboardInterrupt:
        bridge.stop()
    finally:
        health.stop()
        gateway.close()
    print(health.line())
    return 0
