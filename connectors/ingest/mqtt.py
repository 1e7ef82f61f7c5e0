"""The MQTT bridge: a plant's MQTT topics into the Kafka input topics, at-least-once (docs/ingest-mqtt.md).

The bridge is an MQTT v5 client with a persistent session (``clean_start=False`` and a session expiry): the broker
keeps its subscriptions and queues QoS 1 messages while it is away. It acknowledges a message (PUBACK, in the
order received) only once Kafka has the event or its dead letter, so a bridge killed at any moment loses
nothing: the broker delivers again what was not acknowledged. Which asset and modality a message belongs to comes
from its topic, read with the plant's topic template (default ``plant/{asset_id}/{modality}``):

>>> topics = TopicMap("plant/{asset_id}/{modality}")
>>> topics.subscriptions()
['plant/+/+']
>>> topics.resolve("plant/pump-01/vibration")
('pump-01', 'vibration')
>>> topics.resolve("plant/pump-01/temperature")
Traceback (most recent call last):
...
fusewatch.core.errors.InvalidEventError: topic: modality 'temperature' is not vibration, frame or log
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from connectors.ingest.gateway import Done, KafkaGateway
from connectors.ingest.health import BridgeHealth
from connectors.ingest.payloads import StreamDefaults, event_from_payload
from connectors.ingest.sparkplug import NAMESPACE, SparkplugDecoder, split_done, subscriptions
from fusewatch.core.errors import ConfigError, FusewatchError, InvalidEventError
from fusewatch.core.plant import DEFAULT_TEMPLATE, Plant, PlantModality, check_template

log = logging.getLogger(__name__)

MODALITIES: tuple[PlantModality, ...] = ("vibration", "frame", "log")


class TopicMap:
    """Topic → (asset id, modality): the plant's streams, else the topic template with any asset id.

    With a plant file, only its assets' MQTT streams are taken; a message on the template for another asset, or
    for a stream that does not come over MQTT, is refused (a dead letter):

    >>> from fusewatch.core.plant import Plant
    >>> plant = Plant.model_validate({"assets": [
    ...     {"id": "pump-01", "kind": "pump", "vibration": {"source": "mqtt"}},
    ...     {"id": "fan-02", "kind": "fan", "logs": {"source": "mqtt", "topic": "cmms/fan-02"}}]})
    >>> topics = TopicMap(plant.mqtt.topic_template, plant)
    >>> topics.subscriptions()
    ['plant/+/+', 'cmms/fan-02']
    >>> topics.resolve("cmms/fan-02"), topics.resolve("plant/pump-01/vibration")
    (('fan-02', 'log'), ('pump-01', 'vibration'))
    >>> topics.resolve("plant/pump-07/vibration")
    Traceback (most recent call last):
    ...
    fusewatch.core.errors.InvalidEventError: topic: asset 'pump-07' is not in the plant file
    """

    def __init__(self, template: str = DEFAULT_TEMPLATE, plant: Plant | None = None) -> None:
        try:
            check_template(template)
        except ValueError as exc:
            raise ConfigError(f"topic template: {exc}") from None
        self.template = template
        pattern = "".join(f"(?P<{part[1:-1]}>[^/]+)" if part in ("{asset_id}", "{modality}") else re.escape(part)
                          for part in re.split(r"({asset_id}|{modality})", template))
        self._pattern = re.compile(f"^{pattern}$")
        self._wildcard = "/".join("+" if "{" in level else level for level in template.split("/"))
        self.plant = plant
        self._streams: dict[str, tuple[str, PlantModality]] = {}
        if plant is not None:
            for asset in plant.assets:
                for modality in MODALITIES:
                    topic = plant.mqtt_topic(asset.id, modality)
                    if topic is not None:
                        self._streams[topic] = (asset.id, modality)

    def subscriptions(self) -> list[str]:
        """The topic filters to subscribe: the template with ``+`` wildcards and the streams' own topics."""
        own = [topic for topic in self._streams if not self._pattern.match(topic)]
        return [self._wildcard, *own]

    def parse(self, topic: str) -> tuple[str, str] | None:
        """``(asset_id, modality)`` as the template reads ``topic`` (not checked), or ``None``."""
        match = self._pattern.match(topic)
        return None if match is None else (match["asset_id"], match["modality"])

    def resolve(self, topic: str) -> tuple[str, PlantModality]:
        """The asset and modality of a message on ``topic``; :class:`InvalidEventError` (field ``topic``) if none."""
        if topic in self._streams:
            return self._streams[topic]
        parsed = self.parse(topic)
        if parsed is None:
            raise InvalidEventError("topic", f"does not match the topic template {self.template!r}")
        asset_id, modality = parsed
        if modality not in MODALITIES:
            raise InvalidEventError("topic", f"modality {modality!r} is not vibration, frame or log")
        if self.plant is not None:
            if self.plant.asset(asset_id) is None:
                raise InvalidEventError("topic", f"asset {asset_id!r} is not in the plant file")
            raise InvalidEventError("topic", f"the plant file has no MQTT {modality} stream on this topic for"
                                    f" {asset_id!r}")
        return asset_id, modality

    def defaults(self, asset_id: str) -> StreamDefaults:
        """What payloads of ``asset_id`` may leave out (sensor id, unit, camera id, author) from the plant file."""
        asset = None if self.plant is None else self.plant.asset(asset_id)
        if asset is None:
            return StreamDefaults()
        base = StreamDefaults()
        return StreamDefaults(
            sensor_id=base.sensor_id if asset.vibration is None else asset.vibration.sensor_id,
            unit=base.unit if asset.vibration is None else asset.vibration.unit,
            camera_id=base.camera_id if asset.camera is None else asset.camera.id,
            author=None if asset.logs is None else asset.logs.author)


class InOrderAcks:
    """Acknowledges messages in the order they were received, each once Kafka has it (thread-safe).

    ``received(mid)`` returns the ``done`` callback of that message. A message acknowledged by Kafka is
    acknowledged to the broker once every message received before it is too; a Kafka failure holds back the
    acknowledgement of that message and of every later one of the connection (the broker delivers them again
    after a reconnect). A new connection (:meth:`new_connection`) forgets what the old one did not acknowledge:

    >>> sent = []
    >>> acks = InOrderAcks(sent.append)
    >>> first, second, third = acks.received(1), acks.received(2), acks.received(3)
    >>> second(None); sent
    []
    >>> first(None); sent
    [1, 2]
    >>> acks.new_connection(); third(None); sent
    [1, 2]
    """

    def __init__(self, send_ack: Callable[[int], object], on_failure: Callable[[BaseException], None] | None = None,
                 ) -> None:
        self._send_ack = send_ack
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._generation = 0
        self._queue: deque[list[Any]] = deque()  # [mid, done?] in the order received

    def received(self, mid: int) -> Done:
        entry: list[Any] = [mid, False]
        with self._lock:
            generation = self._generation
            self._queue.append(entry)

        def done(error: BaseException | None) -> None:
            if error is not None:
                if self._on_failure is not None:
                    self._on_failure(error)
                return
            with self._lock:
                if generation != self._generation:
                    return
                entry[1] = True
                while self._queue and self._queue[0][1]:
                    self._send_ack(self._queue.popleft()[0])

        return done

    def new_connection(self) -> None:
        with self._lock:
            self._generation += 1
            self._queue.clear()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)


@dataclass
class MqttOptions:
    """Where and how the bridge connects (``url`` ``mqtt://HOST:PORT`` or ``mqtts://HOST:PORT``)."""

    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = "fusewatch-bridge"
    template: str = DEFAULT_TEMPLATE
    session_expiry_s: int = 7 * 86_400
    receive_maximum: int = 1000
    keepalive_s: int = 30
    ca_file: str | None = None
    username: str | None = None
    password: Callable[[], str | None] = field(default=lambda: None, repr=False)
    backoff_s: tuple[float, float] = (1.0, 30.0)
    sparkplug_groups: tuple[str, ...] = ()  # Sparkplug B groups whose DBIRTH/DDATA are read ("+": every group)
    sparkplug_sample_rate_hz: float | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        match = re.match(r"^(mqtts?)://([^/:]+)(?::(\d+))?/?$", self.url)
        if match is None:
            raise ConfigError(f"--mqtt: {self.url!r} is not mqtt://HOST:PORT or mqtts://HOST:PORT")
        default = 8883 if match[1] == "mqtts" else 1883
        return match[2], int(match[3] or default)

    @property
    def tls(self) -> bool:
        return self.url.startswith("mqtts://")


class MqttBridge:
    """Subscribes to the plant's MQTT streams and sends every message to Kafka through ``gateway``.

    :meth:`run` blocks until ``stop`` is set; the broker's outages are ridden out with reconnects (exponential
    backoff up to ``backoff_s[1]``), a Kafka failure makes the bridge disconnect, wait and reconnect so that the
    broker delivers the unacknowledged messages again.
    """

    def __init__(self, gateway: KafkaGateway, options: MqttOptions, plant: Plant | None = None,
                 health: BridgeHealth | None = None) -> None:
        self.gateway = gateway
        self.options = options
        self.topics = TopicMap(options.template, plant)
        self.sparkplug = (SparkplugDecoder(plant, options.sparkplug_sample_rate_hz) if options.sparkplug_groups
                          else None)
        self.subscriptions = self.topics.subscriptions() + subscriptions(options.sparkplug_groups)
        self.health = health if health is not None else BridgeHealth("mqtt", gateway.stats)
        self.host, self.port = options.host_port
        self._uri = f"{'mqtts' if options.tls else 'mqtt'}://{self.host}:{self.port}/"
        self._defaults: dict[str, StreamDefaults] = {}
        self._accepting = threading.Event()
        self._kafka_failed = threading.Event()
        self.connected = threading.Event()
        self.client = self._make_client()
        self.acks = InOrderAcks(lambda mid: self.client.ack(mid, 1), self._kafka_failure)
        self.health.details.update({"broker": self._uri.rstrip("/"), "client_id": options.client_id,
                                    "subscriptions": self.subscriptions})

    def _make_client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.options.client_id,
                             protocol=paho.MQTTv5, manual_ack=True)
        if self.options.tls:
            client.tls_set(ca_certs=self.options.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        low, high = self.options.backoff_s
        client.reconnect_delay_set(max(1, int(low)), max(1, int(high)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.options.session_expiry_s
        properties.ReceiveMaximum = self.options.receive_maximum
        return properties

    # ------------------------------------------------------------------ paho's network thread

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the connection: %s", self._uri.rstrip("/"), reason)
            return
        self.acks.new_connection()
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(topic, options) for topic in self.subscriptions])
        self.health.details["session_present"] = bool(flags.session_present)
        log.info("connected to %s as %s (session %s), subscribed to %s", self._uri.rstrip("/"),
                 self.options.client_id, "resumed" if flags.session_present else "new",
                 ", ".join(self.subscriptions))

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("MQTT broker %s refused subscriptions: %s", self._uri.rstrip("/"), ", ".join(refused))
        self.health.source_connected = True
        self.connected.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.acks.new_connection()
        self.connected.clear()
        if self.health.source_connected:
            self.health.count("reconnects")
        self.health.source_connected = False
        level = logging.INFO if self._accepting_stopped() else logging.WARNING
        log.log(level, "disconnected from %s: %s", self._uri.rstrip("/"), reason)

    def _accepting_stopped(self) -> bool:
        return not self._accepting.is_set()  # the bridge itself disconnected (stopping, or after a Kafka failure)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if not self._accepting.is_set():
            return  # stopping: not acknowledged, so the broker delivers it again to the next run
        self.health.count("received")
        done = self.acks.received(message.mid) if message.qos > 0 else _ignore
        topic = message.topic
        payload = bytes(message.payload)
        modality: str | None = None
        try:
            if self.sparkplug is not None and topic.startswith(NAMESPACE + "/"):
                self._sparkplug(self.sparkplug, topic, payload, done)
                return
            asset_id, modality = self.topics.resolve(topic)
            defaults = self._defaults.get(asset_id)
            if defaults is None:
                defaults = self._defaults[asset_id] = self.topics.defaults(asset_id)
            event = event_from_payload(modality, asset_id, payload, _user_properties(message), defaults)
            self.gateway.send(event, done)
        except FusewatchError as exc:  # InvalidEventError and the codec's errors: a dead letter, then acknowledged
            raw = None if modality == "frame" or (modality is None and _looks_like_image(payload)) else payload
            self.gateway.dead_letter(self._uri + topic, str(exc), raw, time.time_ns(), done)

    def _sparkplug(self, decoder: SparkplugDecoder, topic: str, payload: bytes, done: Done) -> None:
        """A Sparkplug B message: its chunks and (for bad metrics) one dead letter, acknowledged once all are in."""
        result = decoder.decode(topic, payload)
        if result.ignored is not None:
            self.health.count("sparkplug_ignored")
        parts = split_done(done, len(result.chunks) + (result.error is not None))
        for chunk, part in zip(result.chunks, parts, strict=False):
            self.gateway.send(chunk, part, source=self._uri + topic)
        if result.error is not None:
            self.gateway.dead_letter(self._uri + topic, result.error, payload, time.time_ns(), parts[-1])

    # ------------------------------------------------------------------ the producer's thread

    def _kafka_failure(self, error: BaseException) -> None:
        if not self._kafka_failed.is_set():
            log.warning("Kafka did not take a message (%s: %s); reconnecting to the MQTT broker after a pause so"
                        " that it delivers the unacknowledged messages again", type(error).__name__, error)
        self._kafka_failed.set()

    # ------------------------------------------------------------------ the caller's thread

    def run(self, stop: threading.Event) -> None:
        """Bridge until ``stop`` is set; then flush Kafka, acknowledge what it has and disconnect (session kept)."""
        low, high = self.options.backoff_s
        kafka_backoff = low
        while not stop.is_set():
            self._kafka_failed.clear()
            self._accepting.set()  # before connecting: a message the network thread ignores is not delivered again
            self._connect()
            while not stop.is_set() and not self._kafka_failed.is_set():
                stop.wait(0.2)
                if self.gateway.stats()["pending"] == 0 and self.connected.is_set():
                    kafka_backoff = low
            self._accepting.clear()
            if stop.is_set():
                break
            # Kafka failed: messages after the failure stay unacknowledged; drop the connection and come back
            self._disconnect(flush_s=0.0)
            self.health.count("kafka_retries")
            log.info("waiting %.1f s before reconnecting (Kafka: %s)", kafka_backoff,
                     self.gateway.stats()["last_error"])
            stop.wait(kafka_backoff)
            kafka_backoff = min(high, kafka_backoff * 2)
        self._disconnect(flush_s=None)

    def _connect(self) -> None:
        client = self.client
        username, password = self.options.username, self.options.password()
        if username is not None:
            client.username_pw_set(username, password)
        client.connect_async(self.host, self.port, keepalive=self.options.keepalive_s, clean_start=False,
                             properties=self._connect_properties())
        client.loop_start()  # loop_forever in a thread: retries the first connection too, with the backoff

    def _disconnect(self, flush_s: float | None) -> None:
        if flush_s is None or flush_s > 0:
            self.gateway.flush(flush_s)  # the done callbacks queue the PUBACKs of what Kafka has
        self.client.disconnect()  # after the queued PUBACKs; a normal disconnect keeps the session
        self.client.loop_stop()
        self.acks.new_connection()
        self.connected.clear()
        self.health.source_connected = False


def _ignore(error: BaseException | None) -> None:
    return None


def _user_properties(message: paho.MQTTMessage) -> dict[str, str]:
    properties = getattr(message, "properties", None)
    pairs = getattr(properties, "UserProperty", None) if properties is not None else None
    return dict(pairs) if pairs else {}


def _looks_like_image(payload: bytes) -> bool:
    return payload.startswith(b"\xff\xd8\xff") or payload.startswith(b"\x89PNG")


def options_from(plant: Plant | None, url: str | None, client_id: str | None, template: str | None,
                 ca_file: str | None = None, receive_maximum: int = 1000) -> MqttOptions:
    """The bridge's options: command-line values over the plant's ``[mqtt]`` table over the defaults."""
    mqtt = None if plant is None else plant.mqtt
    options = MqttOptions(receive_maximum=receive_maximum, ca_file=ca_file)
    if mqtt is not None:
        options.url, options.client_id, options.template = mqtt.url, mqtt.client_id, mqtt.topic_template
        options.session_expiry_s = mqtt.session_expiry_s
        options.username = mqtt.username
        options.password = lambda: mqtt.password("mqtt")
    options.url = url or options.url
    options.client_id = client_id or options.client_id
    options.template = template or options.template
    options.host_port  # noqa: B018  # checks the URL now
    return options
