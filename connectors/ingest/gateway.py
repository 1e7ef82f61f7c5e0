"""The Kafka side of every bridge: events and dead letters out, a callback once Kafka has them (at-least-once).

A bridge acknowledges its source (an MQTT PUBACK, a file position) only in the callback :meth:`KafkaGateway.send`
calls once the broker acknowledged the message with ``acks=all``: a bridge killed at any moment loses nothing,
and the source delivers again what was not acknowledged. A payload that cannot be read becomes a dead letter
(topic ``dead-letter``) with the reason and the source coordinates — where it came from, as a URI such as
``mqtt://127.0.0.1:1883/plant/pump-01/vibration`` or ``opc.tcp://plc-3:4840#ns=2;s=Pump01.Vibration`` — in the
dead letter's ``source_topic`` (``partition`` and ``offset`` are -1: plant sources have none); it too is
acknowledged to the source only once Kafka has it.

Frames keep out of dead letters as on the worker: only their source coordinates and the reason are kept.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from connectors.kafka.clients import open_client, producer_options
from fusewatch.core.codec import InputEvent, encode
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import DeadLetter, VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.outputs import output_message
from fusewatch.core.timeutil import NS_PER_MS

log = logging.getLogger(__name__)

Done = Callable[[BaseException | None], None]
"""Called once per message from the producer's thread: ``None`` when Kafka has it, else the error."""
Transform = Callable[[VibrationChunk], InputEvent]
"""What vibration chunks become before they are sent (features at the edge)."""


class KafkaGateway:
    """Sends a bridge's events to the input topics and its dead letters to ``dead-letter``; thread-safe.

    ``transform`` (features at the edge) is applied to every vibration chunk before it is encoded.
    """

    def __init__(self, settings: KafkaSettings, role: str, transform: Transform | None = None) -> None:
        self.settings = settings
        self.topics = settings.topics()
        self.transform = transform
        self._lock = threading.Lock()
        self.sent = 0
        self.dead_letters = 0
        self.failed = 0
        self.bytes_sent = 0
        self.pending = 0
        self.last_error: str | None = None
        self.last_ok = time.monotonic()
        self._producer = open_client(KafkaProducer, settings, role, linger_ms=5, batch_size=1024 * 1024,
                                     **producer_options(settings))

    def send(self, event: InputEvent, done: Done, source: str = "") -> None:
        """Queue ``event`` for its input topic; ``done`` is called when the broker has it (or it failed).

        A chunk the transform refuses (features at the edge that come out non-finite) becomes a dead letter from
        ``source`` with its waveform, so nothing is dropped.
        """
        if self.transform is not None and isinstance(event, VibrationChunk):
            try:
                event = self.transform(event)
            except InvalidEventError as exc:
                self.dead_letter(source or f"edge:{event.asset_id}", f"edge features: {exc}", encode(event),
                                 event.ts, done)
                return
        value = encode(event)
        self._send(self.topics.for_event(event), event.asset_id.encode(), value, event.ts // NS_PER_MS, done, False)

    def dead_letter(self, source: str, error: str, raw: bytes | None, ts_ns: int, done: Done) -> None:
        """Queue a dead letter for a payload from ``source`` (a URI) that cannot be read, with the reason."""
        letter = DeadLetter(source_topic=source, partition=-1, offset=-1, error=error,
                            raw_base64="" if raw is None else base64.b64encode(raw).decode("ascii"), ts=ts_ns)
        message = output_message(letter, self.topics)
        log.warning("dead letter from %s: %s", source, error)
        self._send(message.topic, message.key, message.value, ts_ns // NS_PER_MS, done, True,
                   headers=list(message.headers))

    def _send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int, done: Done, dead: bool,
              headers: list[tuple[str, bytes]] | None = None) -> None:
        with self._lock:
            self.pending += 1
        try:
            future = self._producer.send(topic, value=value, key=key, timestamp_ms=timestamp_ms, headers=headers)
        except KafkaError as exc:  # no metadata within max_block_ms: the broker is away
            self._finish(len(value), dead, exc)
            done(exc)
            return

        def acknowledged(_: Any) -> None:
            self._finish(len(value), dead, None)
            done(None)

        def failed(exc: BaseException) -> None:
            self._finish(len(value), dead, exc)
            done(exc)

        future.add_callback(acknowledged)
        future.add_errback(failed)

    def _finish(self, size: int, dead: bool, error: BaseException | None) -> None:
        with self._lock:
            self.pending -= 1
            if error is not None:
                self.failed += 1
                self.last_error = f"{type(error).__name__}: {error}"
                return
            self.last_ok = time.monotonic()
            if dead:
                self.dead_letters += 1
            else:
                self.sent += 1
                self.bytes_sent += size

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued message was acknowledged or failed."""
        try:
            self._producer.flush(timeout=self.settings.timeout_s * 6 if timeout_s is None else timeout_s)
        except KafkaError as exc:
            log.warning("flush to Kafka did not complete: %s", exc)

    def close(self) -> None:
        self.flush()
        self._producer.close(timeout=self.settings.timeout_s)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"sent": self.sent, "dead_letters": self.dead_letters, "failed": self.failed,
                    "pending": self.pending, "bytes": self.bytes_sent, "last_error": self.last_error,
                    "kafka_ok_s_ago": round(time.monotonic() - self.last_ok, 1)}
