"""``fusewatch ingest mqtt``: a plant's MQTT topics into the Kafka input topics (docs/ingest-mqtt.md)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from fusewatch.commands.common import positive_float, positive_int
from fusewatch.commands.ingest.common import add_bridge_options, load_plant_of, open_gateway


def register(bridges: Any) -> None:
    parser: argparse.ArgumentParser = bridges.add_parser(
        "mqtt",
        help="subscribe to a plant's MQTT broker (MQTT v5, QoS 1, persistent session) and publish to Kafka",
        description="Subscribe to the vibration, frame and log topics of a plant's MQTT broker with MQTT v5, QoS 1"
        " and a persistent session (clean_start=False, the session expiry of the plant file's [mqtt] table), so"
        " the broker keeps what is published while the bridge is away. Each message becomes an event of its"
        " asset on the Kafka input topics (wire format v1, keyed by asset, event time from the payload) and is"
        " acknowledged to the broker only once Kafka has it; unreadable payloads and unknown topics or assets go"
        " to the dead-letter topic with the reason and the source mqtt://HOST:PORT/TOPIC. Without --plant, any"
        " asset id of the topic template is taken. The password of [mqtt] username comes from password_env or"
        " password_file. Stop with Ctrl-C or SIGTERM (Kafka is flushed, what it has is acknowledged, the session"
        " is kept). See docs/ingest-mqtt.md.",
    )
    parser.add_argument("--mqtt", metavar="URL", default=None,
                        help="the broker, mqtt://HOST:PORT or mqtts://HOST:PORT (TLS) (default: the plant file's"
                        " [mqtt] url, mqtt://127.0.0.1:1883)")
    parser.add_argument("--client-id", default=None,
                        help="the MQTT client id, which names the persistent session: keep it from run to run"
                        " (default: [mqtt] client_id, fusewatch-bridge)")
    parser.add_argument("--topic-template", default=None, metavar="TEMPLATE",
                        help="where an asset's streams are, with {asset_id} and {modality} (vibration, frame, log)"
                        " (default: [mqtt] topic_template, plant/{asset_id}/{modality})")
    parser.add_argument("--ca-file", default=None, metavar="FILE",
                        help="CA certificate(s) to check an mqtts:// broker against (default: the system's)")
    parser.add_argument("--in-flight", type=positive_int, default=1000, metavar="N",
                        help="receive maximum: messages the broker may send before the bridge acknowledges them,"
                        " which bounds the bridge's memory (default: 1000)")
    parser.add_argument("--reconnect-max", type=positive_float, default=30.0, metavar="S",
                        help="longest wait between reconnection attempts, which double from 1 s (default: 30)")
    parser.add_argument("--sparkplug-group", action="append", default=[], metavar="GROUP",
                        help="also read Sparkplug B DBIRTH and DDATA of this group (repeatable; '+': every group):"
                        " FloatArray/DoubleArray metrics become vibration chunks of the asset named by the device id")
    parser.add_argument("--sparkplug-sample-rate", type=positive_float, default=None, metavar="HZ",
                        help="sample rate of Sparkplug arrays whose DDATA and DBIRTH have no sample_rate_hz metric"
                        " (default: the plant file's vibration sample_rate_hz)")
    add_bridge_options(parser, plant_required=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.ingest.health import BridgeHealth
    from connectors.ingest.mqtt import MqttBridge, options_from

    plant = load_plant_of(args)
    options = options_from(plant, args.mqtt, args.client_id, args.topic_template, args.ca_file, args.in_flight)
    options.backoff_s = (1.0, max(1.0, args.reconnect_max))
    options.sparkplug_groups = tuple(args.sparkplug_group)
    options.sparkplug_sample_rate_hz = args.sparkplug_sample_rate
    options.password()  # a missing password variable or file is an error now, not at each reconnection
    gateway = open_gateway(args, "ingest-mqtt", plant)
    stop = threading.Event()
    try:
        health = BridgeHealth("mqtt", gateway.stats)
        bridge = MqttBridge(gateway, options, plant, health)
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda signum, frame: stop.set())
        health.start(args.health_port, args.health_every)
        try:
            bridge.run(stop)
        finally:
            health.stop()
        _, body = health.report()
    finally:
        gateway.close()
    print("ingest mqtt: " + json.dumps({key: body.get(key, 0) for key in ("received", "sent", "dead_letters",
                                                                         "failed", "reconnects")}, sort_keys=True))
    return 0
