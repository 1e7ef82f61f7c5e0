"""One harness per sink for the conformance suite (test_sink_conformance.py): the sink, its real target, how to
read back what the target holds, and how to make the target unavailable for a while.

Read-backs are independent of the sink's code: plain SQL on the SQLite file, InfluxQL on the InfluxDB server,
the v2 stand-in's stored points, a Kafka reader on the topics. They return fingerprints (a record's kind, its
identity and a value) as the target's readers see it: on Kafka, where a repeated message is an exact copy that
consumers drop, exact copies count once.
"""

from __future__ import annotations

import abc
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest

from connectors.kafka.admin import create_topics, delete_topics, describe_topics
from connectors.kafka.consumer import read_topics
from connectors.kafka.output_sink import KafkaOutputSink
from connectors.sinks.base import Record, Sink, kind_of
from connectors.sinks.influx.points import ALERTS, LOGS, SCORES
from connectors.sinks.influx.writers import InfluxV1Sink, InfluxV2Sink
from connectors.sinks.sqlite import SqliteSink
from fusewatch.core.errors import TopicMismatchError
from fusewatch.core.events import Alert, DeadLetter, Score
from fusewatch.core.kafka_settings import KafkaSettings
from tests.influx_v2 import InfluxV2Double, influx_v2_double
from tests.integration.conftest import InfluxV1
from tests.integration.sinks import PrivateInfluxDB

Fingerprint = tuple[Any, ...]


def fingerprint(record: Record) -> Fingerprint:
    """A record's kind, identity and one value, as every read-back reports it."""
    kind = kind_of(record)
    if isinstance(record, Score):
        return kind, record.asset_id, record.run_id, record.window_end, record.fused
    if isinstance(record, Alert):
        return kind, record.alert_id, record.transition, record.ts, record.fused
    if isinstance(record, DeadLetter):
        return kind, record.source_topic, record.partition, record.offset, record.error
    return kind, record.asset_id, record.ts, record.text


def point_fingerprint(measurement: str, values: dict[str, Any], ts: int) -> Fingerprint | None:
    """The fingerprint of an InfluxDB point (``None`` for points that are not a record's main point)."""
    if measurement == SCORES:
        return "score", values["asset_id"], values["run_id"], ts, values["fused"]
    if measurement == ALERTS:
        return "alert", values["alert_id"], values["transition"], ts, values["fused"]
    if measurement == LOGS:
        return "log", values["asset_id"], ts, values["text"]
    return None


class Harness(abc.ABC):
    """A sink's target for one test; sinks opened through it are discarded and closed at the end."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.exits = contextlib.ExitStack()
        self.opened: list[Sink] = []

    def open(self) -> Sink:
        """A new sink on the target."""
        sink = self._open()
        self.opened.append(sink)
        return sink

    @abc.abstractmethod
    def read(self) -> list[Fingerprint]:
        """What the target holds now."""

    @abc.abstractmethod
    def outage(self) -> contextlib.AbstractContextManager[None]:
        """The target cannot take writes inside the block, and takes them again after it."""

    @abc.abstractmethod
    def _open(self) -> Sink: ...

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with self.exits:
            for sink in self.opened:
                sink.discard()
                sink.close()


class SqliteHarness(Harness):
    """A database file; another writer holding its lock makes it unavailable."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.path = request.getfixturevalue("tmp_path") / "conformance.sqlite"

    def _open(self) -> Sink:
        return SqliteSink(self.path, busy_timeout_s=0.2)

    def read(self) -> list[Fingerprint]:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            return [
                *(("score", *row) for row in db.execute("SELECT asset_id, run_id, window_end, fused FROM scores")),
                *(("alert", *row) for row in db.execute("SELECT alert_id, transition, ts, fused FROM alerts")),
                *(("dead_letter", *row) for row in db.execute(
                    "SELECT source_topic, source_partition, source_offset, error FROM dead_letters")),
            ]

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as writer:
            writer.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                writer.execute("ROLLBACK")


class InfluxV1Harness(Harness):
    """A database of its own on a real InfluxDB 1.x server of the module's own, stopped for an outage."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.server: PrivateInfluxDB = request.getfixturevalue("private_influxdb")
        self.database = InfluxV1(self.server.url, f"fwtest_{uuid.uuid4().hex[:12]}")
        self.database.query(f'CREATE DATABASE "{self.database.database}"', database="")
        self.exits.callback(self.database.query, f'DROP DATABASE "{self.database.database}"', database="")

    def _open(self) -> Sink:
        return InfluxV1Sink(self.server.url, self.database.database, timeout_s=2.0)

    def read(self) -> list[Fingerprint]:
        prints = []
        for measurement in (SCORES, ALERTS, LOGS):
            result = self.database.query(f'SELECT * FROM "{measurement}"')[0]
            for series in result.get("series", []):
                for row in series["values"]:
                    values = dict(zip(series["columns"], row, strict=True))
                    prints.append(point_fingerprint(measurement, values, values["time"]))
        return [p for p in prints if p is not None]

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        self.server.stop()
        try:
            yield
        finally:
            self.server.start()


class InfluxV2Harness(Harness):
    """The v2 stand-in (it checks every request against the wire contract), answering 503 for an outage."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.double: InfluxV2Double = self.exits.enter_context(influx_v2_double())

    def _open(self) -> Sink:
        double = self.double
        return InfluxV2Sink(double.url, org=double.org, bucket=double.bucket, token=double.token, timeout_s=2.0)

    def read(self) -> list[Fingerprint]:
        assert not self.double.violations, self.double.violations
        prints = [point_fingerprint(p.measurement, {**p.tags, **p.fields}, p.time) for p in self.double.points.values()]
        return [p for p in prints if p is not None]

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        self.double.unavailable = True
        try:
            yield
        finally:
            self.double.unavailable = False


class KafkaHarness(Harness):
    """The output topics of a test's own prefix on the real broker; deleted for an outage, created again after."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        kafka: KafkaSettings = request.getfixturevalue("kafka")  # the seven topics, deleted after the test
        self.settings = kafka.model_copy(update={"timeout_s": 3.0})
        topics = self.settings.topics()
        self.outputs = [topics.scores, topics.alerts, topics.dead_letter]
        self.kinds: dict[str, type[Score] | type[Alert] | type[DeadLetter]] = {
            topics.scores: Score, topics.alerts: Alert, topics.dead_letter: DeadLetter}

    def _open(self) -> Sink:
        return KafkaOutputSink(self.settings)

    def read(self) -> list[Fingerprint]:
        messages = {(m.topic, m.key, m.value) for m in read_topics(self.settings, self.outputs)}
        return [fingerprint(self.kinds[topic].model_validate_json(value)) for topic, _, value in messages]

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        delete_topics(self.settings, self.outputs)
        self._until(lambda: all(s.status == "missing" for s in describe_topics(self.settings, self.outputs)))
        try:
            yield
        finally:
            self._until(self._created)

    def _created(self) -> bool:
        try:
            create_topics(self.settings, self.outputs)
            return True
        except TopicMismatchError:  # the deletion is still under way
            return False

    @staticmethod
    def _until(done: Any, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "the broker did not get there in time"
            time.sleep(0.2)

