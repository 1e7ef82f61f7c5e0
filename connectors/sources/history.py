"""Where history comes from: a recording directory, or a time range of the live input topics in Kafka.

``open_history(source, start_ns, end_ns, settings)`` returns a :class:`History` whose :meth:`~History.messages`
are in replay order (:func:`fusewatch.core.history.merged`). A recording is verified in full (every file's size and
SHA-256) before its first message is read, so a damaged one fails at once, naming the file, and nothing runs on
part of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from kafka import TopicPartition

from connectors.kafka.consumer import offset_ranges, read_partition
from connectors.sources.recording import Recording
from fusewatch.core.errors import FusewatchError
from fusewatch.core.history import RecordedMessage, TopicKind, merged
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import format_time


class History(Protocol):
    """Input messages of a time range, in replay order."""

    description: str

    def messages(self) -> Iterator[RecordedMessage]: ...

    def count(self) -> int: ...


def _span(start_ns: int | None, end_ns: int | None) -> str:
    return f"{'the start' if start_ns is None else format_time(start_ns)} to" \
           f" {'the end' if end_ns is None else format_time(end_ns)}"


class RecordingHistory:
    """The messages of a recording directory with a record timestamp in ``[start_ns, end_ns)``."""

    def __init__(self, directory: Path, start_ns: int | None = None, end_ns: int | None = None) -> None:
        self.recording = Recording(directory)
        self.recording.verify()
        self.start_ns, self.end_ns = start_ns, end_ns
        self.description = f"recording {directory} ({_span(start_ns, end_ns)})"

    def messages(self) -> Iterator[RecordedMessage]:
        return self.recording.messages(self.start_ns, self.end_ns)

    def count(self) -> int:
        """The messages of the parts that overlap the range (an upper bound, for progress bars)."""
        start_ms = None if self.start_ns is None else self.start_ns // 1_000_000
        end_ms = None if self.end_ns is None else self.end_ns // 1_000_000
        return sum(part["messages"] for part in self.recording.manifest["parts"]
                   if (start_ms is None or part["last_timestamp_ms"] >= start_ms)
                   and (end_ms is None or part["first_timestamp_ms"] < end_ms))


class KafkaHistory:
    """The input topics between the offsets of ``start_ns`` and ``end_ns`` (see
    :func:`connectors.kafka.consumer.offset_ranges`); one reader per partition, merged lazily."""

    def __init__(self, settings: KafkaSettings, start_ns: int | None, end_ns: int | None) -> None:
        self.settings = settings
        topics = settings.topics()
        self.ranges = offset_ranges(settings, topics.inputs, start_ns, end_ns)
        self.description = f"Kafka {settings.bootstrap_servers} {topics.prefix}* ({_span(start_ns, end_ns)})"

    def messages(self) -> Iterator[RecordedMessage]:
        prefix = self.settings.topic_prefix
        return merged([self._partition(tp, start, end, prefix) for tp, (start, end) in sorted(
            self.ranges.items(), key=lambda item: (item[0].topic, item[0].partition)) if end > start])

    def _partition(self, tp: TopicPartition, start: int, end: int, prefix: str) -> Iterator[RecordedMessage]:
        kind: TopicKind = tp.topic.removeprefix(prefix)
        for record in read_partition(self.settings, tp, start, end):
            yield RecordedMessage(kind, record.partition, record.offset, record.timestamp_ms, record.key,
                                  record.value)

    def count(self) -> int:
        return sum(end - start for start, end in self.ranges.values())


def open_history(source: str, start_ns: int | None, end_ns: int | None,
                 settings: KafkaSettings | None = None) -> History:
    """``source`` is ``kafka`` (the input topics of ``settings``) or the path of a recording directory."""
    if source == "kafka":
        if settings is None:
            raise FusewatchError("--source kafka needs the Kafka settings")
        return KafkaHistory(settings, start_ns, end_ns)
    return RecordingHistory(Path(source), start_ns, end_ns)
