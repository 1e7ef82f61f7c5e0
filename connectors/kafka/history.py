"""History from Kafka: a time range of the live input topics, and :func:`open_history`, the one way to open history.

``open_history(source, start_ns, end_ns, settings)`` opens ``kafka`` (the input topics of ``settings``) or a
recording directory (:class:`~connectors.sources.recording.RecordingHistory`, verified in full before its first
message is read). Either is a :class:`~connectors.sources.base.History`: a bounded source whose messages come in
replay order (:func:`fusewatch.core.history.merged`), also with their Kafka coordinates for the backtest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kafka import TopicPartition

from connectors.kafka.consumer import offset_ranges, read_partition
from connectors.sources.base import History, SourceMessage, from_recorded, range_text
from connectors.sources.recording import RecordingHistory
from fusewatch.core.assets import AssetRegistry
from fusewatch.core.errors import FusewatchError
from fusewatch.core.history import RecordedMessage, TopicKind, merged
from fusewatch.core.kafka_settings import KafkaSettings


class KafkaHistory:
    """The input topics between the offsets of ``start_ns`` and ``end_ns``, fixed when this is created (see
    :func:`connectors.kafka.consumer.offset_ranges`); one reader per partition, merged lazily. Reads without a
    consumer group, so the workers are not disturbed."""

    def __init__(self, settings: KafkaSettings, start_ns: int | None, end_ns: int | None) -> None:
        self.settings = settings
        topics = settings.topics()
        self.ranges = offset_ranges(settings, topics.inputs, start_ns, end_ns)
        self.description = f"Kafka {settings.bootstrap_servers} {topics.prefix}* ({range_text(start_ns, end_ns)})"

    def recorded(self) -> Iterator[RecordedMessage]:
        prefix = self.settings.topic_prefix
        return merged([self._partition(tp, start, end, prefix) for tp, (start, end) in sorted(
            self.ranges.items(), key=lambda item: (item[0].topic, item[0].partition)) if end > start])

    def messages(self) -> Iterator[SourceMessage]:
        return map(from_recorded, self.recorded())

    def _partition(self, tp: TopicPartition, start: int, end: int, prefix: str) -> Iterator[RecordedMessage]:
        kind: TopicKind = tp.topic.removeprefix(prefix)
        for record in read_partition(self.settings, tp, start, end):
            yield RecordedMessage(kind, record.partition, record.offset, record.timestamp_ms, record.key,
                                  record.value)

    def count(self) -> int:
        return sum(end - start for start, end in self.ranges.values())

    def asset_registry(self) -> AssetRegistry | None:
        """The input topics carry messages only, not the registry of their assets."""
        return None

    def close(self) -> None:
        """Nothing stays open: each partition's reader is closed when its range is read (or abandoned)."""


def open_history(source: str, start_ns: int | None, end_ns: int | None,
                 settings: KafkaSettings | None = None) -> History:
    """``source`` is ``kafka`` (the input topics of ``settings``) or the path of a recording directory."""
    if source == "kafka":
        if settings is None:
            raise FusewatchError("--source kafka needs the Kafka settings")
        return KafkaHistory(settings, start_ns, end_ns)
    return RecordingHistory(Path(source), start_ns, end_ns)
