"""Publish input events to Kafka with the wire codec.

Every message is keyed by the asset id's UTF-8 bytes and partitioned with murmur2 (kafka-python's default
partitioner, the same hash as the Java client's and Faust's), so the three modalities of an asset land in the
same partition number of the three co-partitioned input topics. The record timestamp is the event time.
Writes use ``acks=all`` with the idempotent producer, so a retried batch is not written twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from types import TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from connectors.kafka.clients import open_client, producer_options
from fusewatch.core.codec import InputEvent, encode
from fusewatch.core.errors import DeliveryError
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_MS

log = logging.getLogger(__name__)


class EventProducer:
    """Send :data:`~fusewatch.core.codec.InputEvent` objects to their input topics.

    Use as a context manager; leaving it flushes and raises :class:`DeliveryError` if any message failed.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.topics = settings.topics()
        self.sent: Counter[str] = Counter()
        self.bytes_sent = 0
        self.max_pending_bytes = 64 * 1024 * 1024  # wait for the broker beyond this (bounds memory at max speed)
        self.delivery_timeout_s = settings.timeout_s * 6  # how long a message may wait for brokers that are away
        self._pending_bytes = 0
        self._failures: list[BaseException] = []
        self._producer = open_client(KafkaProducer, settings, "producer", linger_ms=5, batch_size=1024 * 1024,
                                     **producer_options(settings))

    def send(self, event: InputEvent) -> None:
        """Queue one event; it is sent in the background and confirmed by :meth:`flush`."""
        self.send_raw(self.topics.for_event(event), event.asset_id, encode(event), event.ts // NS_PER_MS)

    def send_raw(self, topic: str, asset_id: str, value: bytes, timestamp_ms: int | None = None) -> None:
        """Queue an already encoded message (dead-letter tests)."""
        self.send_record(topic, asset_id.encode(), value, timestamp_ms)

    def send_record(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int | None = None,
                    partition: int | None = None) -> None:
        """Queue a message as recorded: its key, bytes, timestamp and (when given) partition (replays)."""
        future = self._send_waiting(topic, key, value, timestamp_ms, partition)
        future.add_errback(self._failed)
        self.sent[topic] += 1
        self.bytes_sent += len(value)
        self._pending_bytes += len(value)
        if self._pending_bytes > self.max_pending_bytes:
            self.flush()

    def _send_waiting(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int | None,
                      partition: int | None) -> Any:
        """``KafkaProducer.send``, waiting out brokers that are away for up to :attr:`delivery_timeout_s`.

        A send blocks for the topic's metadata for at most ``timeout_s``. While the whole cluster restarts no broker
        answers for longer than that, so a time-out is retried, with a warning each time, until the delivery
        time-out has passed since the first; only then is the message called undeliverable.
        """
        deadline: float | None = None
        while True:
            try:
                return self._producer.send(topic, value=value, key=key, timestamp_ms=timestamp_ms,
                                           partition=partition)
            except KafkaTimeoutError as exc:
                now = time.monotonic()
                deadline = now + self.delivery_timeout_s - self.settings.timeout_s if deadline is None else deadline
                if now >= deadline:
                    raise DeliveryError(
                        f"{topic}: no metadata for {self.delivery_timeout_s:g} s ({exc}); are the brokers at"
                        f" {self.settings.bootstrap_servers} up, and does the topic exist? (`fusewatch topics create`)"
                    ) from None
                log.warning("%s: no metadata from %s for %g s (%s); still trying for %.0f s", topic,
                            self.settings.bootstrap_servers, self.settings.timeout_s, exc, deadline - now)

    def _failed(self, exc: BaseException) -> None:
        if not self._failures:
            log.error("Kafka delivery failed: %s", exc)
        self._failures.append(exc)

    def flush(self) -> None:
        """Wait until every queued message is acknowledged; raise :class:`DeliveryError` if any failed."""
        self._pending_bytes = 0
        try:
            self._producer.flush(timeout=self.delivery_timeout_s)
        except KafkaError as exc:
            raise DeliveryError(f"flushing to {self.settings.bootstrap_servers} failed: {exc}") from None
        if self._failures:
            count, first = len(self._failures), self._failures[0]
            self._failures.clear()
            raise DeliveryError(f"{count} message(s) were not delivered; first error: {first}")

    def close(self) -> None:
        self._producer.close(timeout=self.settings.timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                self.flush()
        finally:
            self.close()

    def stats(self) -> dict[str, Any]:
        return {"messages": sum(self.sent.values()), "bytes": self.bytes_sent, "per_topic": dict(self.sent)}
