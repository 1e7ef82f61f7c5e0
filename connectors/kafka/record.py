"""``fusewatch record``: the input topics of a time range into a recording directory (connectors/sources/recording.py).

The offsets of the range are fixed when a recording starts (:func:`~connectors.kafka.consumer.offset_ranges`)
and kept in its manifest; the partitions are then read one after the other, without a consumer group. An
interrupted recording keeps its complete parts: run the same command again to continue after them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kafka import TopicPartition
from tqdm import tqdm

from connectors.kafka.consumer import offset_ranges, read_partition
from connectors.sources.recording import RecordingWriter
from fusewatch.core.errors import RecordingError
from fusewatch.core.history import RecordedMessage, TopicKind
from fusewatch.core.kafka_settings import KafkaSettings


@dataclass(frozen=True)
class RecordResult:
    """What a run of ``record`` wrote."""

    directory: Path
    messages: int  # in this run
    total: int  # in the recording
    resumed: bool


def record(settings: KafkaSettings, start_ns: int | None, end_ns: int | None, out: Path,
           progress: bool = True) -> RecordResult:
    """Record the three input topics between ``start_ns`` and ``end_ns`` into ``out`` (or finish doing so)."""
    prefix = settings.topic_prefix
    source = {"kafka": settings.bootstrap_servers, "topic_prefix": prefix}
    resumed = (out / "manifest.json").exists()
    ranges: dict[tuple[TopicKind, int], tuple[int, int]] = {}
    if not resumed:
        for tp, span in offset_ranges(settings, settings.topics().inputs, start_ns, end_ns).items():
            kind: TopicKind = tp.topic.removeprefix(prefix)
            ranges[(kind, tp.partition)] = span
    writer = RecordingWriter(out, source, start_ns, end_ns, ranges)
    if writer.manifest["source"] != source:
        raise RecordingError(f"{out / 'manifest.json'}: recorded from {writer.manifest['source']}, not {source};"
                             " record into a new directory")
    todo = {key: (max(start, writer.offsets()[key]), end) for key, (start, end) in writer.ranges.items()}
    count = 0
    with tqdm(total=sum(max(0, end - start) for start, end in todo.values()), unit="msg", disable=not progress,
              desc="recording") as bar:
        try:
            for (kind, partition), (start, end) in sorted(todo.items()):
                for message in read_partition(settings, TopicPartition(prefix + kind, partition), start, end):
                    writer.add(RecordedMessage(kind, partition, message.offset, message.timestamp_ms, message.key,
                                               message.value))
                    count += 1
                    bar.update(1)
                writer.flush()  # the partition is done: its last part is written
        except BaseException:
            writer.flush()  # keep what is complete; the next run continues after it
            raise
        writer.finish()
    return RecordResult(out, count, int(writer.manifest["messages"]), resumed)
