"""The three-broker KRaft cluster of ``deploy/local/cluster.sh`` for fault tests: start, stop, kill nodes, find
partition leaders and wait until every replica is back in sync."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kafka.partitioner.default import murmur2

from connectors.kafka.admin import admin_client
from fusewatch.core.kafka_settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "local" / "cluster.sh"
NODES = (1, 2, 3)
INTERNAL_TOPICS = ("__consumer_offsets",)


class ClusterError(AssertionError):
    """A ``cluster.sh`` command failed (with its output)."""


class Cluster:
    """Drives ``cluster.sh``; every command waits for what the script waits for (health after a start)."""

    def __init__(self, script: Path = SCRIPT) -> None:
        self.script = script
        self.bootstrap = self._run("bootstrap").strip()
        cache = Path(os.environ.get("FUSEWATCH_CACHE", Path.home() / ".cache" / "fusewatch"))
        self.home = cache / "cluster"

    def _run(self, *args: str, timeout: float = 180) -> str:
        try:
            done = subprocess.run(["bash", str(self.script), *args], capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"cluster.sh {' '.join(args)} did not finish in {timeout:g} s") from exc
        if done.returncode != 0:
            raise ClusterError(f"cluster.sh {' '.join(args)} exited with {done.returncode}:\n{done.stdout}"
                               f"{done.stderr}")
        return done.stdout

    def up(self, fresh: bool = False) -> float:
        """Start every node that is down (``fresh``: on wiped data) and wait until all are healthy; seconds."""
        started = time.monotonic()
        self._run("up", *(["--fresh"] if fresh else []))
        return time.monotonic() - started

    def down(self) -> float:
        started = time.monotonic()
        self._run("down", timeout=120)
        return time.monotonic() - started

    def kill(self, node: int) -> None:
        """``kill -9`` of node ``node`` (returns once the process is gone)."""
        self._run("kill", str(node))

    def stop(self, node: int) -> float:
        """Graceful stop of one node (SIGTERM: controlled shutdown); seconds it took."""
        started = time.monotonic()
        self._run("stop", str(node), timeout=120)
        return time.monotonic() - started

    def start(self, node: int) -> float:
        """Start one node on its data and wait until it is healthy; seconds it took."""
        started = time.monotonic()
        self._run("start", str(node))
        return time.monotonic() - started

    def server_log(self, node: int) -> Path:
        return self.home / f"node{node}" / "logs" / "server.log"

    def settings(self, prefix: str) -> KafkaSettings:
        """Settings for fusewatch's topics under ``prefix`` on this cluster, three replicas each."""
        return KafkaSettings(bootstrap_servers=self.bootstrap, topic_prefix=prefix, replication_factor=3,
                             timeout_s=10.0)


def partitions(settings: KafkaSettings, topics: Iterable[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """(topic, partition) → kafka-python's description (``leader_id``, ``isr_nodes``, ``replica_nodes``) of every
    partition of ``topics`` that exist."""
    with admin_client(settings) as admin:
        described = admin.describe_topics(list(topics))
    return {(entry["name"], part["partition_index"]): part
            for entry in described if not entry["error_code"] for part in entry["partitions"]}


def partition_of(key: str, count: int) -> int:
    """The partition a key is sent to (murmur2, the producers' partitioner)."""
    number: int = (murmur2(key.encode()) & 0x7FFFFFFF) % count
    return number


def busiest_leader(settings: KafkaSettings, topic: str, keys: Iterable[str]) -> tuple[int, list[int]]:
    """The broker that leads the most partitions of ``topic`` that carry ``keys`` (then the most partitions of
    the topic), and the partitions with data it leads."""
    leaders = {number: part["leader_id"] for (_, number), part in partitions(settings, [topic]).items()}
    loaded = {partition_of(key, len(leaders)) for key in keys}
    with_data = Counter(leaders[number] for number in loaded)
    overall = Counter(leaders.values())
    node = max((n for n in overall if n >= 0), key=lambda n: (with_data[n], overall[n]))
    return node, sorted(number for number in loaded if leaders[number] == node)


def out_of_sync(settings: KafkaSettings, topics: Iterable[str]) -> list[str]:
    """The partitions of ``topics`` (and of Kafka's internal topics) without a leader or with a replica missing
    from the ISR."""
    described = partitions(settings, [*topics, *INTERNAL_TOPICS])
    return [f"{topic}[{number}] leader {part['leader_id']} isr {sorted(part['isr_nodes'])}"
            for (topic, number), part in sorted(described.items())
            if part["leader_id"] < 0 or set(part["isr_nodes"]) != set(part["replica_nodes"])]


def wait_in_sync(settings: KafkaSettings, topics: Iterable[str], timeout: float = 60.0) -> float:
    """Wait until every partition of ``topics`` has a leader and all its replicas in the ISR; seconds it took."""
    names = list(topics)
    started = time.monotonic()
    lagging: list[str] = ["(not asked yet)"]
    while time.monotonic() - started < timeout:
        try:
            lagging = out_of_sync(settings, names)
        except Exception as exc:  # a node that has just started may refuse for a moment
            lagging = [f"describe failed: {exc}"]
        if not lagging:
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"replicas not back in sync after {timeout:g} s: {lagging[:6]}")
