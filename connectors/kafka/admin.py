"""Topic administration: create fusewatch's topics co-partitioned, and check existing ones.

The three input topics must have the same partition count: partition N of each carries the same assets (keys
are hashed with murmur2), so one worker owns all three modalities of an asset. An existing topic with another
count is reported, never silently used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError

from connectors.kafka.clients import open_client, unavailable
from fusewatch.core.errors import AccessDeniedError, TopicMismatchError
from fusewatch.core.kafka_settings import KafkaSettings

log = logging.getLogger(__name__)

TopicStatus = Literal["ok", "missing", "mismatch"]


@dataclass(frozen=True)
class TopicState:
    """One topic as the broker describes it, judged against the settings."""

    name: str
    partitions: int | None
    replication_factor: int | None
    status: TopicStatus

    def problem(self, settings: KafkaSettings) -> str | None:
        """What is wrong with the topic, in words an operator can act on; ``None`` when it is fine."""
        if self.status == "missing":
            return f"topic {self.name} does not exist: run `fusewatch topics create`"
        if self.status == "mismatch":
            return (
                f"topic {self.name} has {self.partitions} partitions, the configuration says {settings.partitions}"
                " (kafka.partitions): fusewatch's topics must be co-partitioned so that one worker owns all of an"
                f" asset's data; set kafka.partitions = {self.partitions} or recreate the topic"
            )
        return None


@contextmanager
def admin_client(settings: KafkaSettings) -> Iterator[KafkaAdminClient]:
    """A connected admin client; :class:`ServiceUnavailableError` when no broker answers in time."""
    client = open_client(KafkaAdminClient, settings, "admin", request_timeout_ms=settings.timeout_ms)
    try:
        yield client
    finally:
        client.close()


def topic_names(settings: KafkaSettings) -> list[str]:
    """Every topic fusewatch uses, inputs first."""
    topics = settings.topics()
    return [*topics.inputs, topics.scores, topics.alerts, topics.dead_letter, topics.worker_health,
            topics.worker_state]


def topic_configs(settings: KafkaSettings, name: str) -> dict[str, str]:
    """The configuration fusewatch gives a topic it creates: every one takes camera frames and, with three replicas
    or more, needs two in sync for a write; the state topic is compacted (only each partition's newest checkpoint
    is kept) and rolls segments every 10 minutes, so what a worker reads to restore a partition stays small
    (docs/production.md).

    >>> topic_configs(KafkaSettings(replication_factor=3), "fusewatch.scores")
    {'max.message.bytes': '8388608', 'min.insync.replicas': '2'}
    >>> topic_configs(KafkaSettings(), "fusewatch.worker-state")["cleanup.policy"]
    'compact'
    """
    configs = {"max.message.bytes": str(settings.max_message_bytes)}
    if settings.replication_factor >= 3:  # an acknowledged write (acks=all) is on two brokers, whatever the default
        configs["min.insync.replicas"] = "2"
    if name == settings.topics().worker_state:
        configs.update({
            "cleanup.policy": "compact",
            "segment.ms": str(10 * 60 * 1000),
            "min.cleanable.dirty.ratio": "0.2",
            "delete.retention.ms": str(60 * 60 * 1000),
        })
    return configs


def describe_topics(settings: KafkaSettings, names: Sequence[str] | None = None) -> list[TopicState]:
    """The state of fusewatch's topics (or of ``names``) on the broker."""
    names = list(names) if names is not None else topic_names(settings)
    with admin_client(settings) as client:
        try:
            entries = client.describe_topics(names)
        except KafkaError as exc:
            raise unavailable(settings, exc) from None
    denied = sorted(entry["name"] for entry in entries if entry["error_code"] == TopicAuthorizationFailedError.errno)
    if denied:
        raise AccessDeniedError(
            f"Kafka at {settings.bootstrap_servers}: {settings.principal} is not authorized for topic"
            f" {', '.join(denied)}; an administrator grants fusewatch's ACLs with `fusewatch topics acls --principal"
            f" {settings.principal if settings.sasl else 'User:NAME'} --apply` (docs/production.md)")
    described = {entry["name"]: entry for entry in entries if not entry["error_code"]}
    return [_state(name, described.get(name), settings) for name in names]


def _state(name: str, entry: dict[str, Any] | None, settings: KafkaSettings) -> TopicState:
    if entry is None:
        return TopicState(name, None, None, "missing")
    partitions = entry["partitions"]
    replicas = min((len(p["replica_nodes"]) for p in partitions), default=0)
    status: TopicStatus = "ok" if len(partitions) == settings.partitions else "mismatch"
    return TopicState(name, len(partitions), replicas, status)


def create_topics(settings: KafkaSettings, names: Sequence[str] | None = None) -> list[TopicState]:
    """Create the missing topics with ``settings.partitions`` partitions; check the existing ones.

    Returns the state of every topic afterwards. Raises :class:`TopicMismatchError` when an existing topic has
    another partition count (nothing is changed then).
    """
    states = describe_topics(settings, names)
    check_states(states, settings, allow_missing=True)
    missing = [state.name for state in states if state.status == "missing"]
    if missing:
        spec = {
            name: {
                "num_partitions": settings.partitions,
                "replication_factor": settings.replication_factor,
                "configs": topic_configs(settings, name),
            }
            for name in missing
        }
        with admin_client(settings) as client:
            try:
                client.create_topics(spec, timeout_ms=settings.timeout_ms, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                log.info("topics created concurrently by another client: %s", ", ".join(missing))
            except KafkaError as exc:
                raise TopicMismatchError(f"creating {', '.join(missing)} failed: {exc}") from None
        log.info("created topics %s with %d partitions", ", ".join(missing), settings.partitions)
    # on a cluster, the broker asked next may learn of new topics a moment after the controller made them
    deadline = time.monotonic() + (settings.timeout_s if missing else 0.0)
    while True:
        states = describe_topics(settings, names)
        if time.monotonic() >= deadline or not any(state.status == "missing" for state in states):
            break
        time.sleep(0.25)
    check_states(states, settings)
    return states


def check_states(states: Sequence[TopicState], settings: KafkaSettings, *, allow_missing: bool = False) -> None:
    """Raise :class:`TopicMismatchError` naming every topic that is missing or has the wrong partition count."""
    problems = [
        problem
        for state in states
        if not (allow_missing and state.status == "missing")
        and (problem := state.problem(settings)) is not None
    ]
    if problems:
        raise TopicMismatchError("; ".join(problems))


def check_topics(settings: KafkaSettings, names: Sequence[str]) -> None:
    """Fail with a clear message unless every topic in ``names`` exists with the configured partition count."""
    check_states(describe_topics(settings, names), settings)


def delete_topics(settings: KafkaSettings, names: Sequence[str]) -> None:
    """Delete topics (the tests' clean-up; operators use Kafka's own tools)."""
    with admin_client(settings) as client:
        client.delete_topics(list(names), timeout_ms=settings.timeout_ms, raise_errors=False)
