"""Topic administration and `fusewatch simulate --kafka` against the real broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from connectors.kafka.admin import create_topics, delete_topics, describe_topics, topic_names
from connectors.kafka.consumer import Record, read_topics
from connectors.kafka.producer import EventProducer
from connectors.kafka.simulate import default_start_ns
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import encode
from fusewatch.core.errors import DeliveryError, ServiceUnavailableError, TopicMismatchError
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import format_time, parse_time
from tests.integration import kcat as kc
from tests.integration.conftest import unique_prefix

pytestmark = pytest.mark.integration
# Record timestamps are event times and the broker expires records older than its retention (7 days) within
# minutes, so simulated history must be recent: one day ending now, on a whole minute.
START = format_time(default_start_ns(time.time_ns(), days=1.0, speed=None))


def fusewatch(*args: str, prefix: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": prefix, **env}
    return subprocess.run(
        [sys.executable, "-m", "fusewatch.cli", *args], capture_output=True, text=True, timeout=timeout,
        env=environment,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_topics_create_is_idempotent_and_describe_reports_them(kafka_broker: KafkaSettings) -> None:
    prefix = unique_prefix()
    try:
        first = fusewatch("topics", "create", "--kafka", kafka_broker.bootstrap_servers, prefix=prefix)
        assert first.returncode == 0, first.stderr
        again = fusewatch("topics", "create", "--kafka", kafka_broker.bootstrap_servers, prefix=prefix)
        assert again.returncode == 0, again.stderr
        described = fusewatch("topics", "describe", prefix=prefix)
        assert described.returncode == 0, described.stderr
        for suffix in ("vibration", "frames", "maintenance-logs", "scores", "alerts", "dead-letter"):
            assert f"{prefix}{suffix}" in described.stdout
        states = describe_topics(kafka_broker.model_copy(update={"topic_prefix": prefix}))
        assert {(s.partitions, s.replication_factor, s.status) for s in states} == {(6, 1, "ok")}
    finally:
        delete_topics(kafka_broker, topic_names(kafka_broker.model_copy(update={"topic_prefix": prefix})))


def test_a_topic_with_another_partition_count_is_reported_not_used(kafka_broker: KafkaSettings) -> None:
    settings = kafka_broker.model_copy(update={"topic_prefix": unique_prefix()})
    create_topics(settings, [settings.topics().frames])  # made with 6 partitions, e.g. by an older deployment
    try:
        four = settings.model_copy(update={"partitions": 4})
        with pytest.raises(TopicMismatchError, match=rf"{settings.topics().frames} has 6 partitions.*says 4"):
            create_topics(four)
        assert [s.status for s in describe_topics(four)] == ["missing", "mismatch", *["missing"] * 6]  # of eight
        described = fusewatch("topics", "describe", prefix=settings.topic_prefix, FUSEWATCH_KAFKA__PARTITIONS="4")
        assert described.returncode == 1
        assert "has 6 partitions, the configuration says 4" in described.stdout
        simulated = fusewatch("simulate", "--days", "0.01", "--speed", "max", prefix=settings.topic_prefix,
                              FUSEWATCH_KAFKA__PARTITIONS="4")
        assert simulated.returncode == 2
        assert "has 6 partitions" in simulated.stderr
        assert "does not exist: run `fusewatch topics create`" in simulated.stderr  # the two missing inputs
    finally:
        delete_topics(settings, topic_names(settings))


def test_a_dead_broker_gives_a_clear_error_in_bounded_time() -> None:
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = fusewatch("simulate", "--kafka", dead, "--days", "0.01", prefix="fusewatch.", timeout=60,
                       FUSEWATCH_KAFKA__TIMEOUT_S="2")
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert f"no Kafka broker answered at {dead} within 2 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 30
    with pytest.raises(ServiceUnavailableError, match="no Kafka broker answered"):
        EventProducer(KafkaSettings(bootstrap_servers=dead, timeout_s=1))


def test_a_send_waits_for_metadata_up_to_the_delivery_time_out_then_names_both_causes(
        kafka_broker: KafkaSettings, caplog: pytest.LogCaptureFixture) -> None:
    """A metadata time-out is retried (brokers restarting answer nobody for longer than ``timeout_s``), logged, and
    only after the delivery time-out is the message undeliverable; a topic that does not exist gets there too."""
    settings = kafka_broker.model_copy(update={"timeout_s": 0.5, "topic_prefix": unique_prefix()})
    missing = settings.topics().vibration  # never created
    with EventProducer(settings) as producer:
        assert producer.delivery_timeout_s == 3.0
        started = time.monotonic()
        with caplog.at_level("WARNING", logger="connectors.kafka.producer"), \
                pytest.raises(DeliveryError, match=rf"{missing}: no metadata for 3 s .*does the topic exist"):
            producer.send_raw(missing, "pump-01", b"{}")
        waited = time.monotonic() - started
    assert 3.0 <= waited < 6.0
    retries = [r.getMessage() for r in caplog.records if "still trying" in r.getMessage()]
    assert len(retries) >= 3 and all(missing in message for message in retries)
    assert producer.stats()["messages"] == 0


def test_simulate_round_trip_every_message_decoded_in_order(kafka: KafkaSettings, kcat: str) -> None:
    """simulate 3 assets x 1 day at max speed; our reader and kcat both get every message, per asset in order."""
    result = fusewatch("simulate", "--kafka", kafka.bootstrap_servers, "--assets", "3", "--days", "1",
                       "--speed", "max", "--start", START, "--no-progress", prefix=kafka.topic_prefix)
    assert result.returncode == 0, result.stderr
    assert "plant speed" in result.stdout

    simulator = PlantSimulator(SimulatorConfig(assets=3, days=1.0, seed=0, start_ns=parse_time(START)))
    topics = kafka.topics()
    expected: dict[tuple[str, str], list[bytes]] = defaultdict(list)
    timestamps: dict[tuple[str, str], list[int]] = defaultdict(list)
    for event in simulator.events():
        expected[(topics.for_event(event), event.asset_id)].append(encode(event))
        timestamps[(topics.for_event(event), event.asset_id)].append(event.ts // 1_000_000)
    # every asset's snapshots and frames (3 x 2 x 1,440), and its maintenance logs if it has any that day
    assert len(expected) >= 6 and sum(map(len, expected.values())) >= 8640

    def check(records: list[Record]) -> None:
        got: dict[tuple[str, str], list[bytes]] = defaultdict(list)
        got_ts: dict[tuple[str, str], list[int]] = defaultdict(list)
        partition_of: dict[str, set[int]] = defaultdict(set)
        for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
            assert record.key is not None
            asset = record.key.decode()
            got[(record.topic, asset)].append(record.value)
            got_ts[(record.topic, asset)].append(record.timestamp_ms)
            partition_of[asset].add(record.partition)
        assert got.keys() == expected.keys()
        for key, values in expected.items():
            assert got[key] == values, f"{key}: messages differ or are out of order"
        assert got_ts == timestamps
        assert all(len(partitions) == 1 for partitions in partition_of.values())  # co-partitioned by asset

    check(list(read_topics(kafka, topics.inputs)))
    check([record for topic in topics.inputs for record in kc.consume(kcat, kafka.bootstrap_servers, topic)])


def test_paced_simulation_never_runs_ahead_of_the_plant_clock(kafka: KafkaSettings) -> None:
    # 0.02 days = 28.8 plant minutes at 1,440x plant speed: at least 1.2 s of wall time
    started = time.monotonic()
    result = fusewatch("simulate", "--assets", "1", "--days", "0.02", "--speed", "1440", "--no-progress",
                       prefix=kafka.topic_prefix)
    assert result.returncode == 0, result.stderr
    assert "requested 1440x" in result.stdout
    assert time.monotonic() - started >= 28 * 60 / 1440
    records = list(read_topics(kafka, kafka.topics().inputs))
    counts = {topic: sum(r.topic == topic for r in records) for topic in kafka.topics().inputs}
    assert counts[kafka.topics().vibration] == counts[kafka.topics().frames] == 28  # plus any maintenance log
    newest = max(record.timestamp_ms for record in records)
    assert newest <= time.time() * 1000  # default start: plant time ends when the run does, never ahead


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_simulation_delivers_exactly_the_first_messages(kafka: KafkaSettings, stop: signal.Signals) -> None:
    """Stopped mid-run, simulate delivers what it sent and nothing after: the topics hold a prefix of the run."""
    start = default_start_ns(time.time_ns(), days=0.5, speed=720)  # 60 s of wall time: stopped long before its end
    env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix}
    process = subprocess.Popen(
        [sys.executable, "-m", "fusewatch.cli", "simulate", "--assets", "2", "--days", "0.5", "--speed", "720",
         "--start", format_time(start), "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(read_topics(kafka, [kafka.topics().vibration])):
            assert time.monotonic() < deadline and process.poll() is None, "simulate sent nothing"
            time.sleep(0.5)
        time.sleep(2)
        process.send_signal(stop)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + stop, err
    assert "stopped:" in err and "sent and delivered" in err, err

    records = sorted(read_topics(kafka, kafka.topics().inputs), key=lambda r: (r.topic, r.partition, r.offset))
    messages = PlantSimulator(SimulatorConfig(assets=2, days=0.5, seed=0, start_ns=start)).messages()
    first = [next(messages) for _ in records]
    assert 8 <= len(records) < 2 * 2 * 720, "stopped after the first snapshots, long before the end"
    expected = sorted((kafka.topic_prefix + m.kind, m.key, m.value, m.timestamp_ms) for m in first)
    got = sorted((r.topic, r.key, r.value, r.timestamp_ms) for r in records)
    assert got == expected, "the topics do not hold exactly the run's first messages, once each"
    sent = int(err.split("stopped: ")[1].split()[0])
    assert sent == len(records)
