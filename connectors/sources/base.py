"""What every source of input messages is: a :class:`Source` yields :class:`SourceMessage` items.

A source is where input messages come from before they reach an input topic: the plant simulator
(:class:`~connectors.sources.simulator.PlantSimulator`), the semi-real plant streaming public data sets
(:class:`~connectors.sources.simulator.semi_real.SemiRealPlant`), a recording on disk
(:class:`~connectors.sources.recording.RecordingHistory`), a time range of the Kafka input topics
(:class:`~connectors.kafka.history.KafkaHistory`) — and, in the same shape, live connections such as MQTT,
OPC UA, camera snapshots or files dropped into a folder. One loop publishes any of them into Kafka at plant speed
(:func:`connectors.kafka.publish.publish`, behind ``fusewatch simulate`` and ``fusewatch replay``); an embedded
runner takes the same four fields (``EmbeddedRunner.publish(topic, key, value, ts_ns)``).

A message is already in the wire format: ``value`` is the bytes of :func:`fusewatch.core.codec.encode`, ``key``
the asset id in UTF-8 (Kafka partitions by it), ``kind`` names the input topic without its prefix, ``ts_ns`` is
the event time, which becomes the record timestamp (in milliseconds). ``partition`` is set only by sources that
know where a message was recorded; a replay keeps it, everything else is partitioned by key.

**Order.** Every (asset, modality) stream comes in the order its producer sent it, which is event-time order;
only a message recorded late stays where the history holds it (the aligner treats it as late, as it did then).
Streams of different assets or modalities may interleave in any way, but a bounded source here yields them
merged by event time, so pacing by event time works.

**Bounded and live sources.** A bounded source (a simulated run, a recording, a closed time range) ends:
:meth:`Source.messages` returns after the last message, and when it is deterministic (seeded, or read from files
or a fixed offset range) every call yields the same messages again. A live source does not end by itself:
``messages()`` yields each message as soon as it arrives (never waiting for more, so a consumer can pace, score or
forward it at once), waits while nothing arrives, and returns once :meth:`Source.close` has been called — from
another thread or a signal handler — or its connection has ended for good; a second call continues with what
arrives from then on. ``close()`` releases connections and files and may be called any number of times.

A source that knows its assets (the simulators) returns their :class:`~fusewatch.core.assets.AssetRegistry`, which
``fusewatch simulate --assets-file`` writes for the workers; the others return ``None``.

Every source passes the conformance suite ``tests/unit/test_source_conformance.py``; adding a source is one new
module and one line in that suite's list of sources (docs/sources.md).

>>> from fusewatch.core.events import MaintenanceLog
>>> event = MaintenanceLog(asset_id="pump-01", ts=1_500_000, text="seal weeping", kind="symptom", author="ops")
>>> message = message_of(event)
>>> message.kind, message.key, message.ts_ns, message.timestamp_ms, message.partition
('maintenance-logs', b'pump-01', 1500000, 1, None)
>>> from fusewatch.core.codec import decode
>>> decode(message.value) == event
True
>>> range_text(None, 86_400 * 10**9)
'the start to 1970-01-02T00:00:00Z'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fusewatch.core.assets import AssetRegistry
from fusewatch.core.codec import InputEvent, encode
from fusewatch.core.history import TOPIC_KINDS, RecordedMessage, TopicKind
from fusewatch.core.timeutil import NS_PER_MS, format_time
from fusewatch.core.topics import Topics

_KINDS: dict[str, TopicKind] = {kind: kind for kind in TOPIC_KINDS}
_UNPREFIXED = Topics(prefix="")


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One input message as a source yields it: topic kind, key, wire bytes, event time, recorded partition."""

    kind: TopicKind
    key: bytes | None
    value: bytes
    ts_ns: int
    partition: int | None = None

    @property
    def timestamp_ms(self) -> int:
        """The Kafka record timestamp: the event time in whole milliseconds."""
        return self.ts_ns // NS_PER_MS


@runtime_checkable
class Source(Protocol):
    """A source of input messages: simulated, recorded or live (see the module's documentation)."""

    @property
    def description(self) -> str:
        """One line naming the source, for logs and summaries."""
        ...

    def messages(self) -> Iterator[SourceMessage]:
        """The messages, as they come: to the end of a bounded source, until :meth:`close` for a live one."""
        ...

    def asset_registry(self) -> AssetRegistry | None:
        """The assets the source describes, or ``None`` when it does not know them."""
        ...

    def close(self) -> None:
        """Release what the source holds (idempotent); a live source's :meth:`messages` then returns."""
        ...


@runtime_checkable
class History(Source, Protocol):
    """A bounded source of recorded input messages that also knows their Kafka coordinates (a recording, a time
    range of the input topics): what ``fusewatch replay`` and ``fusewatch backtest`` read."""

    def recorded(self) -> Iterator[RecordedMessage]:
        """The messages of :meth:`messages` with their partition and offset, in the same (replay) order."""
        ...

    def count(self) -> int:
        """How many messages there are, or an upper bound (for progress bars)."""
        ...


def message_of(event: InputEvent) -> SourceMessage:
    """An event as the message a producer sends: its topic kind, the asset id as key, the wire bytes, its time."""
    return SourceMessage(_KINDS[_UNPREFIXED.for_event(event)], event.asset_id.encode(), encode(event), event.ts)


def messages_of_steps(steps: Iterable[Iterable[InputEvent]]) -> Iterator[SourceMessage]:
    """The events of a simulator's time steps (each in time order), one message each: a simulator's messages."""
    for step in steps:
        for event in step:
            yield message_of(event)


def from_recorded(message: RecordedMessage) -> SourceMessage:
    """A recorded message as a source yields it: the record timestamp as event time, the partition kept."""
    return SourceMessage(message.kind, message.key, message.value, message.timestamp_ms * NS_PER_MS,
                         message.partition)


def range_text(start_ns: int | None, end_ns: int | None) -> str:
    """A time range in words, for descriptions (``None``: open at that end)."""
    return (f"{'the start' if start_ns is None else format_time(start_ns)} to"
            f" {'the end' if end_ns is None else format_time(end_ns)}")
