"""Worker checkpoints in a compacted Kafka topic, so a worker on any host resumes a partition's state.

Partition N of ``<prefix>worker-state`` holds the checkpoint of input partition N, for each app id (consumer
group of workers: two groups reading the same inputs keep apart states), as records of two kinds:

- **chunks**, key ``<app id>/p<N>/g<generation>/s<sequence>/c<index>``: the zlib-compressed state, cut to fit
  ``max.message.bytes`` (1 MiB at most);
- a **header**, key ``<app id>/p<N>/g<generation>``, written after its chunks were acknowledged: JSON with the format
  version, the input offsets the state covers, the configuration digest, the sequence and chunk count, the
  SHA-256 of the compressed state, the writer and the time.

A worker that takes partition N over reads it from the beginning, restores the newest header of the highest
generation whose chunks are complete and match the checksum, and writes from then on with a generation one above
every generation it saw: a stale writer (a worker that lost the partition but has not noticed yet) writes under a
lower generation and can never win. Superseded chunks and the headers and chunks of older generations are
deleted with tombstones, and compaction keeps the topic to about one checkpoint per partition.

``save`` returns only once every record is acknowledged by the in-sync replicas (``acks=all``), and the worker
commits input offsets only after that. With ``cache_dir``, a copy is kept on local disk and used on restore only
when its checksum matches the topic's newest header (docs/production.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import zlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from connectors.kafka.clients import open_client, producer_options
from fusewatch.core.errors import DeliveryError, IncompatibleStateError, ServiceUnavailableError
from fusewatch.core.kafka_settings import KafkaSettings
from streams.checkpoint import Checkpoint, CheckpointStore

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_CHUNK_BYTES = 1024 * 1024


@dataclass
class _PartitionLog:
    """What a worker knows about one state partition: the generation it writes, its next sequence, and the keys
    it will delete once its own checkpoint is acknowledged."""

    generation: int
    sequence: int = 0  # of the next checkpoint
    last_chunks: int = 0  # chunks of the previous checkpoint (sequence - 1), deleted once the next is written
    stale: set[bytes] = field(default_factory=set)


def _generation(key: bytes) -> int:
    """The generation a key belongs to (``app/p3/g7/s2/c0`` → 7)."""
    return int(key.split(b"/")[2][1:])


class KafkaCheckpointStore:
    """Checkpoints of a worker's partitions in the state topic (thread-safe: saved from the checkpoint thread)."""

    def __init__(self, settings: KafkaSettings, app_id: str, writer: str, cache_dir: Path | None = None) -> None:
        if not app_id or "/" in app_id:
            raise ValueError(f"app id {app_id!r}: must be non-empty and without '/'")
        self.namespace = f"{app_id}/".encode()
        self.settings = settings
        self.topic = settings.topics().worker_state
        self.writer = writer
        self.cache = CheckpointStore(cache_dir) if cache_dir is not None else None
        self.chunk_bytes = min(MAX_CHUNK_BYTES, settings.max_message_bytes - 64 * 1024)
        self.stats: dict[str, float] = {"saved": 0, "saved_bytes": 0, "restored": 0, "restore_s": 0.0}
        self._logs: dict[int, _PartitionLog] = {}
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None

    # ------------------------------------------------------------------ restore

    def load(self, partition: int) -> Checkpoint | None:
        """The newest valid checkpoint of ``partition`` (``None``: none yet); fixes the generation this worker
        writes it with. :class:`ServiceUnavailableError` when the state topic cannot be read in time."""
        return self.load_many([partition])[partition]

    def load_many(self, partitions: Collection[int]) -> dict[int, Checkpoint | None]:
        """:meth:`load` for several partitions with one reader (a worker assigned six partitions reads them in
        one pass instead of opening six consumers)."""
        started = time.monotonic()
        found = self._read(sorted(set(partitions)))
        seconds = time.monotonic() - started
        self.stats["restore_s"] += seconds
        restored: dict[int, Checkpoint | None] = {}
        for partition, (headers, chunks, read_bytes) in found.items():
            generations = [_generation(key) for key in (*headers, *chunks)]
            with self._lock:
                self._logs[partition] = _PartitionLog(max(generations, default=0) + 1, stale={*headers, *chunks})
            checkpoint = None
            for key in sorted(headers, key=_generation, reverse=True):
                try:
                    checkpoint = self._assemble(partition, headers[key], chunks)
                    break
                except IncompatibleStateError as exc:
                    log.error("partition %d: checkpoint %s in %s is not usable (%s); trying an older one", partition,
                              key.decode(), self.topic, exc)
            restored[partition] = checkpoint
            if checkpoint is not None:
                self.stats["restored"] += 1
                log.info("partition %d: checkpoint of %d bytes restored from %s in %.2f s (%d bytes read)",
                         partition, len(checkpoint.state), self.topic, seconds, read_bytes)
        return restored

    def _read(self, partitions: list[int]) -> dict[int, tuple[dict[bytes, dict[str, Any]], dict[bytes, bytes], int]]:
        """Per partition: every live header (parsed) and chunk, tombstones applied, and the bytes read."""
        consumer: KafkaConsumer = open_client(
            KafkaConsumer, self.settings, "state-reader", group_id=None, enable_auto_commit=False,
            request_timeout_ms=max(self.settings.timeout_ms, 31_000),
            max_partition_fetch_bytes=self.settings.max_message_bytes,
            fetch_max_bytes=max(self.settings.max_message_bytes, 32 * 1024 * 1024))
        found: dict[int, tuple[dict[bytes, dict[str, Any]], dict[bytes, bytes], int]] = {}
        try:
            tps = [TopicPartition(self.topic, partition) for partition in partitions]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            read_bytes = dict.fromkeys(partitions, 0)
            headers: dict[int, dict[bytes, dict[str, Any]]] = {partition: {} for partition in partitions}
            chunks: dict[int, dict[bytes, bytes]] = {partition: {} for partition in partitions}
            deadline = time.monotonic() + self.settings.timeout_s
            while behind := [tp for tp in tps if consumer.position(tp) < ends[tp]]:
                batches = consumer.poll(timeout_ms=500)
                if batches:
                    deadline = time.monotonic() + self.settings.timeout_s
                elif time.monotonic() > deadline:
                    at = ", ".join(f"[{tp.partition}] at {consumer.position(tp)} of {ends[tp]}" for tp in behind)
                    raise ServiceUnavailableError(
                        f"{self.topic}: no progress for {self.settings.timeout_s:g} s reading checkpoints ({at})")
                for tp, batch in batches.items():
                    for record in batch:
                        key = record.key or b""
                        read_bytes[tp.partition] += len(key) + len(record.value or b"")
                        if not key.startswith(self.namespace):  # another app id's state
                            continue
                        if key.count(b"/") == 2:
                            if record.value is None:
                                headers[tp.partition].pop(key, None)
                            else:
                                headers[tp.partition][key] = json.loads(record.value)
                        elif record.value is None:
                            chunks[tp.partition].pop(key, None)
                        else:
                            chunks[tp.partition][key] = record.value
            found = {p: (headers[p], chunks[p], read_bytes[p]) for p in partitions}
        except KafkaError as exc:
            raise ServiceUnavailableError(f"reading {self.topic} {partitions} failed: {exc}") from None
        finally:
            consumer.close()
        return found

    def _assemble(self, partition: int, header: dict[str, Any], chunks: dict[bytes, bytes]) -> Checkpoint:
        if header.get("format") != FORMAT_VERSION:
            raise IncompatibleStateError(f"format {header.get('format')}, this version reads {FORMAT_VERSION}")
        offsets = {str(topic): int(offset) for topic, offset in header["offsets"].items()}
        digest = str(header["config_digest"])
        if self.cache is not None:
            cached = self.cache.load(partition)
            if cached is not None and _sha256(zlib.compress(cached.state, 1)) == header["sha256"]:
                return Checkpoint(partition, offsets, digest, cached.state, float(header["written_at"]))
        generation, sequence = int(header["generation"]), int(header["sequence"])
        parts = []
        for index in range(int(header["chunks"])):
            chunk = chunks.get(self._chunk_key(partition, generation, sequence, index))
            if chunk is None:
                raise IncompatibleStateError(f"chunk {index} of {header['chunks']} is missing")
            parts.append(chunk)
        payload = b"".join(parts)
        if _sha256(payload) != header["sha256"]:
            raise IncompatibleStateError("checksum mismatch")
        try:
            state = zlib.decompress(payload)
        except zlib.error as exc:
            raise IncompatibleStateError(f"not zlib data ({exc})") from None
        return Checkpoint(partition, offsets, digest, state, float(header["written_at"]))

    def _header_key(self, partition: int, generation: int) -> bytes:
        return self.namespace + f"p{partition}/g{generation}".encode()

    def _chunk_key(self, partition: int, generation: int, sequence: int, index: int) -> bytes:
        return self.namespace + f"p{partition}/g{generation}/s{sequence}/c{index}".encode()

    # ------------------------------------------------------------------ save

    def save(self, checkpoint: Checkpoint) -> bool:
        """Write the checkpoint and wait until the in-sync replicas have it; then delete what it supersedes.

        Raises :class:`DeliveryError` when the cluster did not acknowledge it (the worker then keeps the messages
        unacknowledged, and the next checkpoint covers them)."""
        partition = checkpoint.partition
        with self._lock:
            known = self._logs.get(partition)
        if known is None:  # never restored here (a test, a tool): take a generation above the topic's
            self.load(partition)
            known = self._logs[partition]
        payload = zlib.compress(checkpoint.state, 1)
        sequence = known.sequence
        pieces = [payload[start:start + self.chunk_bytes] for start in range(0, len(payload), self.chunk_bytes)]
        keys = [self._chunk_key(partition, known.generation, sequence, index) for index in range(len(pieces))]
        header = {
            "format": FORMAT_VERSION, "partition": partition, "generation": known.generation, "sequence": sequence,
            "offsets": checkpoint.offsets, "config_digest": checkpoint.config_digest, "chunks": len(pieces),
            "bytes": len(payload), "sha256": _sha256(payload), "writer": self.writer, "written_at": time.time(),
        }
        self._send(partition, zip(keys, pieces, strict=True))
        self._send(partition, [(self._header_key(partition, known.generation), json.dumps(header).encode())])
        superseded = {self._chunk_key(partition, known.generation, sequence - 1, index)
                      for index in range(known.last_chunks)}
        with self._lock:
            stale, known.stale = known.stale | superseded, set()
            known.sequence, known.last_chunks = sequence + 1, len(pieces)
        try:
            self._send(partition, [(key, None) for key in sorted(stale)])
        except DeliveryError as exc:  # left for compaction to meet again: the next owner deletes them
            log.warning("partition %d: deleting superseded checkpoint records failed (%s)", partition, exc)
        if self.cache is not None:
            self.cache.save(checkpoint, compressed=payload)
        self.stats["saved"] += 1
        self.stats["saved_bytes"] += len(payload)
        return True

    def _send(self, partition: int, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        producer = self._connect()
        futures = [producer.send(self.topic, key=key, value=value, partition=partition) for key, value in records]
        producer.flush(timeout=self.settings.timeout_s)
        for future in futures:
            if not future.is_done or future.failed():
                problem = future.exception if future.is_done else "not acknowledged in time"
                raise DeliveryError(f"{self.topic}[{partition}]: checkpoint not written ({problem})")

    def _connect(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = open_client(KafkaProducer, self.settings, "state-writer", linger_ms=0,
                                             **producer_options(self.settings))
            return self._producer

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self.settings.timeout_s)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
