"""Checkpoints of a partition's stream state, tied to the input offsets they cover.

A checkpoint holds the aligner, models and alert state of every asset in one partition number, and for each
input topic the next offset not yet in that state. A worker that takes the partition over (after a crash or a
rebalance) loads the newest checkpoint and skips every message below those offsets: no window is lost and
none is counted twice. Messages after the checkpoint are processed again; processing is deterministic, so the
outputs they produce repeat the same ids (at-least-once with idempotent outputs).

Files are written atomically (temporary file, fsync, rename) as ``p<partition>.ckpt`` in the checkpoint
directory: a magic line, a JSON header (format version, partition, offsets, configuration digest, time) and
the zlib-compressed pickle of the state. A damaged file is reported and ignored, never half-loaded.

>>> import tempfile
>>> store = CheckpointStore(tempfile.mkdtemp())
>>> store.save(Checkpoint(partition=3, offsets={"fusewatch.vibration": 42}, config_digest="abc", state=b"..."))
True
>>> store.save(Checkpoint(partition=3, offsets={"fusewatch.vibration": 40}, config_digest="abc", state=b"..."))
False
>>> store.load(3).offsets
{'fusewatch.vibration': 42}
>>> store.load(4) is None
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fusewatch.core.errors import IncompatibleStateError

log = logging.getLogger(__name__)

MAGIC = b"fusewatch-checkpoint\n"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """The state of one partition number and the input offsets it covers."""

    partition: int
    offsets: dict[str, int]
    config_digest: str
    state: bytes = field(repr=False)
    written_at: float = 0.0


def config_digest(text: str) -> str:
    """A short digest of the configuration a state was built with."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CheckpointStorage(Protocol):
    """Where a worker keeps its partitions' checkpoints: the state topic on the cluster
    (:class:`connectors.kafka.state_store.KafkaCheckpointStore`, what ``fusewatch worker`` uses) or a directory
    (:class:`CheckpointStore`: the local cache, and tests)."""

    def load(self, partition: int) -> Checkpoint | None: ...

    def load_many(self, partitions: Collection[int]) -> dict[int, Checkpoint | None]:
        """The checkpoints of several partitions (one read, where the storage can do that)."""
        ...

    def save(self, checkpoint: Checkpoint) -> bool: ...


class CheckpointStore:
    """Checkpoint files in one directory: a worker's local cache of the state topic, or a test's store."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, partition: int) -> Path:
        return self.directory / f"p{partition}.ckpt"

    def save(self, checkpoint: Checkpoint, compressed: bytes | None = None) -> bool:
        """Write the checkpoint unless the file already covers more of some topic (a stale writer); True if written.

        ``compressed``: the state already compressed with ``zlib.compress(state, 1)`` (the Kafka store's payload),
        so a cached copy does not compress it a second time."""
        current = self._offsets_on_disk(checkpoint.partition)
        if current is not None and any(o > checkpoint.offsets.get(t, 0) for t, o in current.items()):
            log.warning("partition %d: not overwriting a checkpoint that covers more (%s) with %s",
                        checkpoint.partition, current, checkpoint.offsets)
            return False
        header = {
            "format": FORMAT_VERSION,
            "partition": checkpoint.partition,
            "offsets": checkpoint.offsets,
            "config_digest": checkpoint.config_digest,
            "written_at": time.time(),
        }
        body = zlib.compress(checkpoint.state, 1) if compressed is None else compressed
        target = self.path(checkpoint.partition)
        temporary = target.with_suffix(f".tmp-{uuid.uuid4().hex}")
        with open(temporary, "wb") as out:
            out.write(MAGIC + json.dumps(header).encode() + b"\n")
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
        return True

    def _offsets_on_disk(self, partition: int) -> dict[str, int] | None:
        try:
            with open(self.path(partition), "rb") as existing:
                if existing.read(len(MAGIC)) != MAGIC:
                    return None
                header = json.loads(existing.readline())
            return {str(k): int(v) for k, v in header["offsets"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load_many(self, partitions: Collection[int]) -> dict[int, Checkpoint | None]:
        return {partition: self.load(partition) for partition in partitions}

    def load(self, partition: int) -> Checkpoint | None:
        """The partition's checkpoint, or ``None`` when there is none or it is unreadable (logged)."""
        path = self.path(partition)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            if not raw.startswith(MAGIC):
                raise IncompatibleStateError("not a fusewatch checkpoint")
            header_line, _, body = raw[len(MAGIC) :].partition(b"\n")
            header = json.loads(header_line)
            if header.get("format") != FORMAT_VERSION:
                raise IncompatibleStateError(f"format {header.get('format')}, this version reads {FORMAT_VERSION}")
            state = zlib.decompress(body)
            return Checkpoint(
                partition=int(header["partition"]),
                offsets={str(k): int(v) for k, v in header["offsets"].items()},
                config_digest=str(header["config_digest"]),
                state=state,
                written_at=float(header["written_at"]),
            )
        except (IncompatibleStateError, ValueError, KeyError, TypeError, zlib.error) as exc:
            log.error("checkpoint %s is unreadable (%s); the partition starts from its committed offsets", path, exc)
            return None
