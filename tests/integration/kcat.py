"""Drive kcat (librdkafka's command-line client), an implementation independent of fusewatch's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from connectors.kafka.consumer import Record

# topic, partition, offset, timestamp, key length, key, payload length, payload: lengths make binary safe
FORMAT = "%t,%p,%o,%T,%K,%k,%S,%s"


def consume(kcat: str, bootstrap: str, topic: str) -> list[Record]:
    """Every message in ``topic`` as kcat reads it (from the beginning to the end, then exit)."""
    result = subprocess.run(
        [kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", FORMAT],
        capture_output=True, timeout=120, check=True,
    )
    return parse(result.stdout)


def parse(out: bytes) -> list[Record]:
    records = []
    at = 0

    def field() -> bytes:
        nonlocal at
        end = out.index(b",", at)
        value, at = out[at:end], end + 1
        return value

    def sized(length: int) -> bytes:
        nonlocal at
        value, at = out[at : at + length], at + length
        return value

    while at < len(out):
        topic, partition, offset, timestamp = field().decode(), int(field()), int(field()), int(field())
        key_length = int(field())
        key = sized(key_length) if key_length >= 0 else None
        assert out[at : at + 1] == b",", "kcat output out of step"
        at += 1
        value = sized(int(field()))
        records.append(Record(topic, partition, offset, timestamp, key, value))
    return records


def produce_file(kcat: str, bootstrap: str, topic: str, key: str, path: Path) -> None:
    """Publish the file's bytes as one message, partitioned like the Java client (murmur2)."""
    subprocess.run(
        [kcat, "-P", "-b", bootstrap, "-t", topic, "-k", key, "-X", "topic.partitioner=murmur2_random", str(path)],
        capture_output=True, timeout=60, check=True,
    )
