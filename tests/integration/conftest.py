"""Fixtures of the integration tier: the real Kafka broker and InfluxDB server from ``make services-up``.

Every test gets its own topics (a uuid prefix) and its own InfluxDB database, deleted afterwards, so tests never
see each other's data. When a service is down the tests fail with the reason; they are never skipped.
Addresses come from ``FUSEWATCH_TEST_KAFKA`` and ``FUSEWATCH_TEST_INFLUXDB`` (defaults: the local services).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.kafka.admin import create_topics, delete_topics, describe_topics, topic_names
from fusewatch.core.errors import ServiceUnavailableError
from fusewatch.core.kafka_settings import KafkaSettings

KAFKA = os.environ.get("FUSEWATCH_TEST_KAFKA", "127.0.0.1:9092")
INFLUXDB = os.environ.get("FUSEWATCH_TEST_INFLUXDB", "http://127.0.0.1:8086")
HOW_TO_START = "start the services with `make services-up` (make test does it by itself)"


@pytest.fixture(scope="session")
def kafka_broker() -> KafkaSettings:
    """Settings for the running broker; fails the test when it does not answer."""
    settings = KafkaSettings(bootstrap_servers=KAFKA, timeout_s=10.0)
    try:
        describe_topics(settings, ["fusewatch-probe"])
    except ServiceUnavailableError as exc:
        pytest.fail(f"Kafka broker at {KAFKA} is not available: {exc}; {HOW_TO_START}")
    return settings


def unique_prefix() -> str:
    return f"fwtest-{uuid.uuid4().hex[:12]}."


@pytest.fixture()
def kafka(kafka_broker: KafkaSettings) -> Iterator[KafkaSettings]:
    """Settings with a topic prefix of this test's own; fusewatch's eight topics are created, then deleted."""
    settings = kafka_broker.model_copy(update={"topic_prefix": unique_prefix()})
    create_topics(settings)
    try:
        yield settings
    finally:
        delete_topics(settings, topic_names(settings))


@pytest.fixture(scope="session")
def kcat() -> str:
    """The kcat binary (Debian package ``kcat``, installed by ``make services-up``)."""
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(f"kcat is not installed; {HOW_TO_START}")
    return path


@dataclass(frozen=True)
class InfluxV1:
    """A database of its own on the running InfluxDB 1.x server, spoken to over its HTTP API."""

    url: str
    database: str

    def query(self, statement: str, database: str | None = None) -> list[dict[str, Any]]:
        """Run an InfluxQL statement; the ``results`` list of the response. Errors raise."""
        params = {"q": statement, "epoch": "ns"}
        target = self.database if database is None else database
        if target:
            params["db"] = target
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as response:
            body = json.loads(response.read())
        for result in body["results"]:
            if "error" in result:
                raise RuntimeError(f"InfluxDB: {result['error']} (in {statement!r})")
        results: list[dict[str, Any]] = body["results"]
        return results

    def write(self, lines: str) -> int:
        """Write line protocol (nanosecond timestamps); the HTTP status (204 on success)."""
        url = f"{self.url}/write?" + urllib.parse.urlencode({"db": self.database, "precision": "ns"})
        request = urllib.request.Request(url, data=lines.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status


@pytest.fixture(scope="session")
def influxdb_server() -> str:
    """The running InfluxDB's URL; fails the test when ``/ping`` does not answer."""
    try:
        with urllib.request.urlopen(f"{INFLUXDB}/ping", timeout=5) as response:
            if response.status != 204:
                pytest.fail(f"InfluxDB at {INFLUXDB} answered /ping with {response.status}; {HOW_TO_START}")
    except (urllib.error.URLError, OSError) as exc:
        pytest.fail(f"InfluxDB at {INFLUXDB} is not available: {exc}; {HOW_TO_START}")
    return INFLUXDB


@pytest.fixture()
def influxdb(influxdb_server: str) -> Iterator[InfluxV1]:
    """A fresh database for this test, dropped afterwards."""
    db = InfluxV1(influxdb_server, f"fwtest_{uuid.uuid4().hex[:12]}")
    db.query(f'CREATE DATABASE "{db.database}"', database="")
    try:
        yield db
    finally:
        db.query(f'DROP DATABASE "{db.database}"', database="")
