"""The Kafka output sink: scores, alert transitions and dead letters onto fusewatch's output topics.

A :class:`~connectors.sinks.base.Sink` over kafka-python's idempotent producer (``acks=all``). Each record becomes
the message the worker sends for it (:func:`~fusewatch.core.outputs.output_message`: same topic, key, value and
``fusewatch-id``), so consumers cannot tell who produced it. :meth:`KafkaOutputSink.add` only buffers;
:meth:`KafkaOutputSink.flush` sends the buffer and waits for the broker's acknowledgements. A message stays
buffered until it is acknowledged: a broker that cannot be reached, a topic or partition without a leader, a
timeout raise :class:`~fusewatch.core.errors.SinkUnavailableError` and the next flush sends what is left (an
acknowledgement lost on the way repeats the message: an exact copy with the same id, which consumers drop). A
message the broker refuses (too large, not authorised) raises :class:`~fusewatch.core.errors.SinkRejectedError`.
An exact repeat of a buffered record is sent once.

The producer is created at the first flush that has something to send, so a sink that is never given anything
never connects (the sink agent's dead letters).

The worker does not use this class: it sends the same messages with faust's producer on its event loop
(``streams/runners/worker.py``), where a blocking flush would stall its agent and timers.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from kafka import KafkaProducer
from kafka.errors import KafkaError

from connectors.kafka.clients import open_client, producer_options
from connectors.sinks.base import Record, RecordKind
from fusewatch.core.errors import AccessDeniedError, ServiceUnavailableError, SinkRejectedError, SinkUnavailableError
from fusewatch.core.events import Alert, DeadLetter, Score
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.outputs import OutgoingMessage, output_message

log = logging.getLogger(__name__)


class KafkaOutputSink:
    """Send records to the output topics of ``settings`` (``role``: the client id's suffix the broker sees)."""

    kinds: ClassVar[frozenset[RecordKind]] = frozenset({Score, Alert, DeadLetter})

    def __init__(self, settings: KafkaSettings, role: str = "output") -> None:
        self.settings = settings
        self.topics = settings.topics()
        self.role = role
        self.sent = 0  # messages the broker acknowledged
        self._pending: dict[OutgoingMessage, None] = {}  # in order of addition; an exact repeat is kept once
        self._producer: KafkaProducer | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"KafkaOutputSink({self.settings.bootstrap_servers!r}, prefix={self.settings.topic_prefix!r})"

    @property
    def pending(self) -> int:
        """Messages buffered and not yet acknowledged."""
        return len(self._pending)

    def add(self, record: Record) -> None:
        """Buffer the message of a score, alert transition or dead letter (a log entry is ignored)."""
        if isinstance(record, Score | Alert | DeadLetter):
            self._pending[output_message(record, self.topics)] = None

    def flush(self) -> None:
        """Send what is buffered and wait until the broker has acknowledged every message."""
        if not self._pending:
            return
        producer = self._connect()
        sent: list[tuple[OutgoingMessage, Any]] = []
        problem: BaseException | None = None
        for message in self._pending:
            try:
                future = producer.send(message.topic, key=message.key, value=message.value,
                                       headers=list(message.headers))
            except KafkaError as exc:  # no metadata for the topic within max_block_ms, a message too large, ...
                problem = exc
                break
            sent.append((message, future))
        try:
            producer.flush(timeout=self.settings.timeout_s * 6)
        except KafkaError as exc:  # not every message was acknowledged in time: those stay buffered
            problem = problem or exc
        for message, future in sent:
            if future.succeeded():
                del self._pending[message]
                self.sent += 1
            elif future.failed() and (problem is None or not _retriable(future.exception)):
                problem = future.exception  # a refusal outweighs a retriable error
        if problem is None:
            return
        where, why = f"Kafka at {self.settings.bootstrap_servers}", _describe(problem)
        if not _retriable(problem):
            self._pending.clear()
            raise SinkRejectedError(f"{where} refused output messages: {why}") from problem
        raise SinkUnavailableError(f"{where} did not acknowledge {len(self._pending)} output message(s): {why}",
                                   retry_after_s=1.0) from problem

    def discard(self) -> None:
        """Forget the messages not yet acknowledged."""
        self._pending.clear()

    def close(self) -> None:
        """Flush, then close the producer (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            if self._producer is not None:
                self._producer.close(timeout=self.settings.timeout_s)
                self._producer = None

    def _connect(self) -> KafkaProducer:
        if self._producer is not None:
            return self._producer
        settings = self.settings
        try:
            self._producer = open_client(KafkaProducer, settings, self.role, **producer_options(settings))
        except AccessDeniedError:
            raise
        except (ServiceUnavailableError, KafkaError) as exc:
            raise SinkUnavailableError(f"Kafka at {settings.bootstrap_servers} is unreachable: {exc}") from exc
        return self._producer


def _retriable(exc: BaseException | None) -> bool:
    """Whether sending again may succeed (kafka-python marks its errors; anything else counts as retriable)."""
    return bool(getattr(exc, "retriable", True))


def _describe(exc: BaseException) -> str:
    """The error with its type's name once (kafka-python's errors already start with it)."""
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"
