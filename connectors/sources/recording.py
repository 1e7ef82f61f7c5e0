"""Recordings of the input topics on disk: format ``fusewatch-recording`` version 1 (docs/replay.md).

A recording is a directory::

    manifest.json                         what was recorded, every part with its size and SHA-256, complete?
    vibration/p000-00000.jsonl            one JSON line per message: offset, timestamp, key, wire header
                                          (features computed at the edge, wire kind 4: also their ``values``)
    vibration/p000-00000.npz              the samples, columnar: float32 ``samples`` + int64 ``bounds``
    frames/p000-00000.jsonl               ...
    frames/p000-00000.tar                 the images, one member per frame (``<offset>.jpg|png``)
    maintenance-logs/p000-00000.jsonl     the log entries are their header: text records

A part holds consecutive messages of one (topic, partition) in offset order. Messages are kept as sent: the
header of the wire envelope is stored as it was and the payload beside it, so a replay rebuilds the same bytes
(:func:`fusewatch.core.codec.join_envelope`), invalid events included (they become dead letters again); a message
whose envelope cannot be read is kept whole, in base64. A feature set computed at the edge (wire kind 4 on the
vibration topic) is a header-only row whose ``values`` list holds its float64 feature values (JSON numbers
round-trip float64 exactly; a set with a value that is not finite is kept in base64); recordings written before
kind 4 existed read as before. Parts and the manifest are written to temporary files
and renamed, the manifest last, so a recording interrupted at any point holds only complete parts and resumes
after the last of them.

:class:`RecordingHistory` is a recording as a :class:`~connectors.sources.base.Source` (what ``fusewatch replay``
and ``fusewatch backtest`` read): a time range of it, verified in full when it is opened.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectors.sources.base import SourceMessage, from_recorded, range_text
from fusewatch.core.assets import AssetRegistry
from fusewatch.core.codec import (
    KIND_FEATURES,
    KIND_FRAME,
    KIND_LOG,
    KIND_VIBRATION,
    join_envelope,
    split_envelope,
)
from fusewatch.core.errors import InvalidEventError, RecordingError
from fusewatch.core.history import TOPIC_KINDS, RecordedMessage, TopicKind, merged
from fusewatch.core.timeutil import NS_PER_MS, format_time

FORMAT = "fusewatch-recording"
VERSION = 1
MANIFEST = "manifest.json"
_WIRE_KIND = {"vibration": KIND_VIBRATION, "frames": KIND_FRAME, "maintenance-logs": KIND_LOG}
_EXTENSION = {"jpeg": "jpg", "png": "png"}


@dataclass
class _Part:
    kind: TopicKind
    partition: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)  # samples bytes or image bytes, by row "payload" index
    size: int = 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class RecordingWriter:
    """Writes a recording part by part; :meth:`offsets` says where to resume each (kind, partition).

    ``ranges`` maps ``(kind, partition)`` to the ``[start, end)`` offsets to record; a directory that already
    holds a manifest is resumed (its own ranges are kept, the ones given are ignored).
    """

    def __init__(self, directory: Path, source: dict[str, Any], start_ns: int | None, end_ns: int | None,
                 ranges: dict[tuple[TopicKind, int], tuple[int, int]], part_bytes: int = 32 << 20,
                 part_messages: int = 5000) -> None:
        self.directory = directory
        self.part_bytes, self.part_messages = part_bytes, part_messages
        self._open: dict[tuple[TopicKind, int], _Part] = {}
        path = directory / MANIFEST
        if path.exists():
            self.manifest = Recording(directory).manifest  # checks format and version
            if self.manifest["complete"]:
                raise RecordingError(f"{path}: the recording is complete already; record into a new directory")
            self._discard_unlisted()
        else:
            directory.mkdir(parents=True, exist_ok=True)
            self.manifest = {
                "format": FORMAT, "version": VERSION, "source": source,
                "from": None if start_ns is None else format_time(start_ns),
                "to": None if end_ns is None else format_time(end_ns),
                "ranges": [{"kind": k, "partition": p, "start": s, "end": e}
                           for (k, p), (s, e) in sorted(ranges.items())],
                "parts": [], "messages": 0, "complete": False,
            }
            self._save_manifest()

    @property
    def ranges(self) -> dict[tuple[TopicKind, int], tuple[int, int]]:
        return {(r["kind"], r["partition"]): (r["start"], r["end"]) for r in self.manifest["ranges"]}

    def offsets(self) -> dict[tuple[TopicKind, int], int]:
        """The next offset to record per (kind, partition): after the last recorded part, or the range start."""
        next_offset = {key: start for key, (start, _) in self.ranges.items()}
        for part in self.manifest["parts"]:
            key = (part["kind"], part["partition"])
            next_offset[key] = max(next_offset[key], part["last_offset"] + 1)
        return next_offset

    def _discard_unlisted(self) -> None:
        listed = {name for part in self.manifest["parts"] for name in part["files"]}
        for kind in TOPIC_KINDS:
            for path in sorted((self.directory / kind).glob("*")) if (self.directory / kind).is_dir() else []:
                if f"{kind}/{path.name}" not in listed:
                    path.unlink()  # written by an interrupted run after its last listed part

    def add(self, message: RecordedMessage) -> None:
        """Add the next message of its (kind, partition) (offsets must increase)."""
        key = (message.kind, message.partition)
        part = self._open.get(key)
        if part is None:
            part = self._open[key] = _Part(message.kind, message.partition)
        row: dict[str, Any] = {"offset": message.offset, "timestamp_ms": message.timestamp_ms}
        if message.key is not None:
            try:
                row["key"] = message.key.decode("utf-8")
            except UnicodeDecodeError:
                row["key_base64"] = base64.b64encode(message.key).decode("ascii")
        try:
            wire_kind, header, payload = split_envelope(message.value)
        except InvalidEventError:
            wire_kind, header, payload = -1, {}, b""
        values = _feature_values(payload) if message.kind == "vibration" and wire_kind == KIND_FEATURES else None
        storable = wire_kind == _WIRE_KIND[message.kind] and (
            (message.kind == "vibration" and len(payload) % 4 == 0)
            or (message.kind == "frames" and header.get("encoding") in _EXTENSION)
            or (message.kind == "maintenance-logs" and not payload))
        if values is not None:
            row["header"] = header
            row["values"] = values
        elif storable:
            row["header"] = header
            if message.kind != "maintenance-logs":
                row["payload"] = len(part.payloads)
                part.payloads.append(payload)
        else:
            row["raw_base64"] = base64.b64encode(message.value).decode("ascii")
        part.rows.append(row)
        part.size += len(message.value)
        if part.size >= self.part_bytes or len(part.rows) >= self.part_messages:
            self._flush(key)

    def _flush(self, key: tuple[TopicKind, int]) -> None:
        part = self._open.pop(key, None)
        if part is None or not part.rows:
            return
        folder = self.directory / part.kind
        folder.mkdir(exist_ok=True)
        sequence = sum(1 for p in self.manifest["parts"] if (p["kind"], p["partition"]) == key)
        stem = f"p{part.partition:03d}-{sequence:05d}"
        files: dict[str, bytes] = {}
        if part.kind == "vibration":
            bounds = np.cumsum([0] + [len(payload) // 4 for payload in part.payloads], dtype=np.int64)
            samples = np.frombuffer(b"".join(part.payloads), dtype="<f4")
            buffer = io.BytesIO()
            np.savez(buffer, samples=samples, bounds=bounds)
            files[f"{stem}.npz"] = buffer.getvalue()
        elif part.kind == "frames":
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for row in part.rows:
                    if "payload" in row:
                        data = part.payloads[row["payload"]]
                        member = tarfile.TarInfo(f"{row['offset']:012d}.{_EXTENSION[row['header']['encoding']]}")
                        member.size = len(data)
                        tar.addfile(member, io.BytesIO(data))
            files[f"{stem}.tar"] = buffer.getvalue()
        files[f"{stem}.jsonl"] = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in part.rows).encode()
        for name, data in files.items():
            _write_atomically(folder / name, data)
        self.manifest["parts"].append({
            "kind": part.kind, "partition": part.partition, "first_offset": part.rows[0]["offset"],
            "last_offset": part.rows[-1]["offset"], "messages": len(part.rows),
            "first_timestamp_ms": min(row["timestamp_ms"] for row in part.rows),
            "last_timestamp_ms": max(row["timestamp_ms"] for row in part.rows),
            "files": {f"{part.kind}/{name}": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                      for name, data in files.items()},
        })
        self.manifest["messages"] += len(part.rows)
        self._save_manifest()

    def flush(self) -> None:
        """Write every open part (a resumed recording continues after them)."""
        for key in list(self._open):
            self._flush(key)

    def finish(self) -> None:
        """Write what is open and mark the recording complete."""
        self.flush()
        self.manifest["complete"] = True
        self._save_manifest()

    def _save_manifest(self) -> None:
        _write_atomically(self.directory / MANIFEST, (json.dumps(self.manifest, indent=1) + "\n").encode())


class Recording:
    """A recording directory, read back: :meth:`verify` checks every file, :meth:`messages` yields them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        path = directory / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordingError(f"{path}: no manifest: not a fusewatch recording (or not started)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordingError(f"{path}: the manifest is not valid JSON ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise RecordingError(f"{path}: not a {FORMAT} manifest")
        if manifest.get("version") != VERSION:
            raise RecordingError(f"{path}: format version {manifest.get('version')}, this version reads {VERSION}")
        self.manifest: dict[str, Any] = manifest

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def count(self) -> int:
        return int(self.manifest["messages"])

    def verify(self) -> None:
        """Raise :class:`RecordingError` naming the first file that is missing, truncated or altered, or the
        manifest when the recording was never finished."""
        if not self.complete:
            raise RecordingError(f"{self.directory / MANIFEST}: the recording is incomplete (interrupted?);"
                                 " run `fusewatch record` again with the same --out to finish it")
        for part in self.manifest["parts"]:
            for name, expected in part["files"].items():
                path = self.directory / name
                if not path.is_file():
                    raise RecordingError(f"{path}: missing")
                size = path.stat().st_size
                if size != expected["bytes"]:
                    raise RecordingError(f"{path}: {size} bytes, the manifest says {expected['bytes']} (truncated?)")
                if _sha256(path) != expected["sha256"]:
                    raise RecordingError(f"{path}: checksum mismatch (the file was altered or corrupted)")

    def partitions(self, start_ns: int | None = None, end_ns: int | None = None) -> list[Iterator[RecordedMessage]]:
        """One iterator per (kind, partition), in offset order; only messages with a timestamp in range."""
        keys = sorted({(part["kind"], part["partition"]) for part in self.manifest["parts"]})
        return [self._messages_of(kind, partition, start_ns, end_ns) for kind, partition in keys]

    def messages(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[RecordedMessage]:
        """Every message in replay order (see :func:`fusewatch.core.history.merged`)."""
        return merged(self.partitions(start_ns, end_ns))

    def _messages_of(self, kind: TopicKind, partition: int, start_ns: int | None,
                     end_ns: int | None) -> Iterator[RecordedMessage]:
        start_ms = None if start_ns is None else start_ns // 1_000_000
        end_ms = None if end_ns is None else end_ns // 1_000_000
        parts = sorted((p for p in self.manifest["parts"] if (p["kind"], p["partition"]) == (kind, partition)),
                       key=lambda p: p["first_offset"])
        for part in parts:
            if (start_ms is not None and part["last_timestamp_ms"] < start_ms) or (
                    end_ms is not None and part["first_timestamp_ms"] >= end_ms):
                continue
            for message in self._read_part(part):
                if (start_ms is None or message.timestamp_ms >= start_ms) and (
                        end_ms is None or message.timestamp_ms < end_ms):
                    yield message

    def _read_part(self, part: dict[str, Any]) -> list[RecordedMessage]:
        names: Sequence[str] = sorted(part["files"])
        index = next(name for name in names if name.endswith(".jsonl"))
        path = self.directory / index
        try:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            payloads = self._payloads(part, names)
            kind: TopicKind = part["kind"]
            return [RecordedMessage(kind, part["partition"], row["offset"], row["timestamp_ms"], _key(row),
                                    self._value(kind, row, payloads)) for row in rows]
        except (OSError, ValueError, KeyError, IndexError, tarfile.TarError) as exc:
            raise RecordingError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None

    def _payloads(self, part: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
        payloads: dict[str, Any] = {}
        for name in names:
            path = self.directory / name
            try:
                if name.endswith(".npz"):
                    with np.load(path, allow_pickle=False) as arrays:
                        payloads["samples"], payloads["bounds"] = arrays["samples"], arrays["bounds"]
                elif name.endswith(".tar"):
                    with tarfile.open(path, mode="r") as tar:
                        payloads["images"] = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                                              for m in tar.getmembers() if m.isfile()}
            except (OSError, ValueError, KeyError, tarfile.TarError) as exc:
                raise RecordingError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
        return payloads

    @staticmethod
    def _value(kind: TopicKind, row: dict[str, Any], payloads: dict[str, Any]) -> bytes:
        if "raw_base64" in row:
            return base64.b64decode(row["raw_base64"])
        if "values" in row:  # a feature set computed at the edge
            values = row["values"]
            if not isinstance(values, list) or not all(type(v) is float for v in values):
                raise ValueError(f"offset {row['offset']}: values must be a list of numbers")
            return join_envelope(KIND_FEATURES, row["header"], np.array(values, dtype="<f8").tobytes())
        payload = b""
        if kind == "vibration":
            start, end = payloads["bounds"][row["payload"]], payloads["bounds"][row["payload"] + 1]
            payload = payloads["samples"][start:end].astype("<f4", copy=False).tobytes()
        elif kind == "frames":
            payload = payloads["images"][f"{row['offset']:012d}.{_EXTENSION[row['header']['encoding']]}"]
        return join_envelope(_WIRE_KIND[kind], row["header"], payload)


def _feature_values(payload: bytes) -> list[float] | None:
    """The float64 values of a kind 4 payload when JSON keeps them exactly (all finite), else ``None``."""
    if len(payload) % 8:
        return None
    values: list[float] = np.frombuffer(payload, dtype="<f8").tolist()
    return values if all(math.isfinite(v) for v in values) else None


def _key(row: dict[str, Any]) -> bytes | None:
    if "key" in row:
        return str(row["key"]).encode("utf-8")
    if "key_base64" in row:
        return base64.b64decode(row["key_base64"])
    return None


class RecordingHistory:
    """The messages of a recording directory with a record timestamp in ``[start_ns, end_ns)``, in replay order.

    The recording is verified in full (every file's size and SHA-256) when this is created, so a damaged one fails
    at once, naming the file, and nothing is read from part of it. A :class:`~connectors.sources.base.History`.
    """

    def __init__(self, directory: Path, start_ns: int | None = None, end_ns: int | None = None) -> None:
        self.recording = Recording(directory)
        self.recording.verify()
        self.start_ns, self.end_ns = start_ns, end_ns
        self.description = f"recording {directory} ({range_text(start_ns, end_ns)})"

    def recorded(self) -> Iterator[RecordedMessage]:
        return self.recording.messages(self.start_ns, self.end_ns)

    def messages(self) -> Iterator[SourceMessage]:
        return map(from_recorded, self.recorded())

    def count(self) -> int:
        """The messages of the parts that overlap the range (an upper bound, for progress bars)."""
        start_ms = None if self.start_ns is None else self.start_ns // NS_PER_MS
        end_ms = None if self.end_ns is None else self.end_ns // NS_PER_MS
        return sum(part["messages"] for part in self.recording.manifest["parts"]
                   if (start_ms is None or part["last_timestamp_ms"] >= start_ms)
                   and (end_ms is None or part["first_timestamp_ms"] < end_ms))

    def asset_registry(self) -> AssetRegistry | None:
        """A recording holds messages only, not the registry of their assets."""
        return None

    def close(self) -> None:
        """Nothing stays open: each part's files are read and closed as the messages reach it."""
