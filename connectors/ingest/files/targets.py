"""Where imported events go: a recording directory (the format of ``fusewatch record``) or the Kafka input topics.

Imported events arrive in file order, not in time order (files of several assets, a CMMS export sorted by
machine). :class:`TimeOrderSpool` keeps every message's wire bytes in a temporary file and only a small index in
memory (about 40 bytes a message), and gives them back in event-time order (ties in arrival order), so a target
receives each partition's messages in time order whatever the input order:

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as folder, TimeOrderSpool(Path(folder)) as spool:
...     for kind, ts in (("vibration", 30), ("maintenance-logs", 10), ("vibration", 20)):
...         spool.add(SpoolEntry(kind, b"pump-01", ts, kind.encode()))
...     [(entry.kind, entry.ts_ns) for entry in spool.ordered()]
[('maintenance-logs', 10), ('vibration', 20), ('vibration', 30)]

A recording gets, per topic, the murmur2 partition of each key for ``[kafka] partitions`` (the partition Kafka's
producers choose) and offsets 0, 1, ... per partition in time order; importing into an existing complete
recording merges the old messages with the new ones and rewrites it (the old one is replaced only once the new
one is complete).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np
from kafka.partitioner.default import murmur2
from tqdm import tqdm

from connectors.sources.recording import MANIFEST, Recording, RecordingWriter
from fusewatch.core.codec import split_envelope
from fusewatch.core.errors import InvalidEventError, RecordingError
from fusewatch.core.history import TOPIC_KINDS, RecordedMessage, TopicKind
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_MS, parse_time

_KIND_CODE = {kind: code for code, kind in enumerate(TOPIC_KINDS)}
EXTRA_FILES = ("labels.csv",)  # files beside a recording's parts that a rewrite keeps


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client and kafka-python) gives ``key``.

    >>> partition_of(b"pump-01", 6), partition_of(b"pump-01", 1)
    (1, 0)
    """
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One message of an input topic: kind, key (the asset id), event time in ns, wire bytes."""

    kind: TopicKind
    key: bytes
    ts_ns: int
    value: bytes


class TimeOrderSpool:
    """Messages spooled to a temporary file in ``folder``, read back in (event time, arrival) order."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".fusewatch-import-", suffix=".spool", dir=folder)
        self.path = Path(name)
        self._file = os.fdopen(handle, "w+b")
        self._ts, self._offset = array("q"), array("q")
        self._key_length, self._value_length, self._kind = array("l"), array("l"), array("b")
        self._size = 0
        self.keys: Counter[bytes] = Counter()

    def __len__(self) -> int:
        return len(self._ts)

    @property
    def size_bytes(self) -> int:
        return self._size

    def add(self, entry: SpoolEntry) -> None:
        self._file.write(entry.key)
        self._file.write(entry.value)
        self._ts.append(entry.ts_ns)
        self._offset.append(self._size)
        self._key_length.append(len(entry.key))
        self._value_length.append(len(entry.value))
        self._kind.append(_KIND_CODE[entry.kind])
        self._size += len(entry.key) + len(entry.value)
        self.keys[entry.key] += 1

    def order(self) -> np.ndarray:
        """Indexes of the messages in (event time, arrival) order."""
        return np.argsort(np.frombuffer(self._ts, dtype=np.int64), kind="stable")

    def kinds_and_keys(self) -> Iterator[tuple[TopicKind, bytes]]:
        """The (kind, key) of every message in time order, without reading the values (to count partitions)."""
        self._file.flush()
        descriptor = self._file.fileno()
        for index in self.order():
            offset, length = self._offset[index], self._key_length[index]
            yield TOPIC_KINDS[self._kind[index]], os.pread(descriptor, length, offset)

    def ordered(self) -> Iterator[SpoolEntry]:
        """Every message, in (event time, arrival) order."""
        self._file.flush()
        descriptor = self._file.fileno()
        for index in self.order():
            key_length, value_length = self._key_length[index], self._value_length[index]
            data = os.pread(descriptor, key_length + value_length, self._offset[index])
            yield SpoolEntry(TOPIC_KINDS[self._kind[index]], data[:key_length], int(self._ts[index]),
                             data[key_length:])

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> TimeOrderSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class Target(Protocol):
    """Where an import delivers its time-ordered messages."""

    description: str

    def spool_folder(self) -> Path:
        """A folder for the temporary spool (on the target's disk, for a recording)."""
        ...

    def preload(self, spool: TimeOrderSpool) -> None:
        """Add the messages the target holds already and must keep (an existing recording)."""
        ...

    def deliver(self, spool: TimeOrderSpool, progress: bool) -> dict[str, Any]:
        """Write the spool's messages in time order; what was written."""
        ...


def _event_ts(message: RecordedMessage) -> int:
    """A recorded message's event time: its header's ``ts`` (ns), else its record timestamp."""
    try:
        _, header, _ = split_envelope(message.value)
        return parse_time(header["ts"])
    except (InvalidEventError, KeyError, ValueError, TypeError):
        return message.timestamp_ms * NS_PER_MS


class RecordingTarget:
    """A recording directory of ``partitions`` partitions per topic, created or merged into (module docs)."""

    def __init__(self, directory: Path, partitions: int, source: dict[str, Any]) -> None:
        self.directory, self.partitions, self.source = directory, partitions, source
        self.description = f"recording {directory}"
        self.existing: Recording | None = None
        if (directory / MANIFEST).exists():
            existing = Recording(directory)
            existing.verify()  # an incomplete or damaged recording is refused, naming the file
            counts = Counter(r["kind"] for r in existing.manifest["ranges"])
            if counts and set(counts.values()) != {partitions}:
                raise RecordingError(f"{directory}: the recording has {max(counts.values())} partitions per topic,"
                                     f" [kafka] partitions is {partitions}; import into a new directory or set"
                                     " FUSEWATCH_KAFKA__PARTITIONS to match")
            self.existing = existing
        elif directory.exists() and any(path.name not in EXTRA_FILES for path in directory.iterdir()):
            raise RecordingError(f"{directory}: exists, is not empty and holds no recording; choose a new directory")

    def spool_folder(self) -> Path:
        return self.directory.parent if self.directory.parent.exists() else Path(tempfile.gettempdir())

    def preload(self, spool: TimeOrderSpool) -> None:
        if self.existing is None:
            return
        for message in self.existing.messages():
            spool.add(SpoolEntry(message.kind, message.key or b"", _event_ts(message), message.value))

    def deliver(self, spool: TimeOrderSpool, progress: bool) -> dict[str, Any]:
        cache: dict[bytes, int] = {}
        counts: Counter[tuple[TopicKind, int]] = Counter()
        for kind, key in spool.kinds_and_keys():
            partition = cache.get(key)
            if partition is None:
                partition = cache[key] = partition_of(key, self.partitions)
            counts[(kind, partition)] += 1
        ranges = {(kind, p): (0, counts[(kind, p)]) for kind in TOPIC_KINDS for p in range(self.partitions)}
        final = self.directory
        building = final.with_name(final.name + ".importing") if self.existing is not None else final
        if building != final and building.exists():
            shutil.rmtree(building)  # left by an interrupted merge
        source = dict(self.source)
        if self.existing is not None:
            source["merged_into"] = self.existing.manifest["source"]
        writer = RecordingWriter(building, source, None, None, ranges)
        next_offset: Counter[tuple[TopicKind, int]] = Counter()
        with tqdm(total=len(spool), unit="msg", disable=not progress, desc="writing") as bar:
            for entry in spool.ordered():
                partition = cache[entry.key]
                offset = next_offset[(entry.kind, partition)]
                next_offset[(entry.kind, partition)] += 1
                writer.add(RecordedMessage(entry.kind, partition, offset, entry.ts_ns // NS_PER_MS, entry.key,
                                           entry.value))
                bar.update(1)
        writer.finish()
        if building != final:
            for name in EXTRA_FILES:
                if (final / name).exists():
                    shutil.copy2(final / name, building / name)
            retired = final.with_name(final.name + ".replaced")
            os.replace(final, retired)
            os.replace(building, final)
            shutil.rmtree(retired)
        return {"messages": int(writer.manifest["messages"]), "parts": len(writer.manifest["parts"]),
                "merged": self.existing is not None}


class KafkaTarget:
    """The Kafka input topics of ``settings``: each message keyed by asset, record timestamp = event time."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.description = f"Kafka {settings.bootstrap_servers} (topics {settings.topic_prefix}*)"

    def spool_folder(self) -> Path:
        return Path(tempfile.gettempdir())

    def preload(self, spool: TimeOrderSpool) -> None:
        """The topics keep what they hold: new messages are appended."""

    def deliver(self, spool: TimeOrderSpool, progress: bool) -> dict[str, Any]:
        from connectors.kafka.producer import EventProducer

        by_kind = {kind: self.settings.topic_prefix + kind for kind in TOPIC_KINDS}
        with EventProducer(self.settings) as producer, tqdm(total=len(spool), unit="msg", disable=not progress,
                                                            desc="sending") as bar:
            for entry in spool.ordered():
                producer.send_record(by_kind[entry.kind], entry.key, entry.value, entry.ts_ns // NS_PER_MS)
                bar.update(1)
            stats = producer.stats()
        return stats
