"""`fusewatch sink` on the real broker and the real InfluxDB: one point per window, replays overwrite, an outage
loses nothing and commits nothing unwritten, bad messages become dead letters, alerts reach webhooks once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import RebalanceInProgressError
from standardwebhooks import Webhook

from connectors.kafka.consumer import offset_ranges, read_topics
from connectors.kafka.sink_agent import SinkAgent, SinkOptions
from connectors.sinks.influx.writers import open_sink
from connectors.sources.simulator import PlantSimulator
from connectors.webhooks.signing import WebhookSecret
from fusewatch.core.events import Alert, Score, WorkerHealth
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, format_time, parse_time
from tests.integration.conftest import InfluxV1
from tests.integration.sinks import PrivateInfluxDB, SinkProcess, committed
from tests.integration.test_worker import cli, plant
from tests.integration.workers import WorkerProcess, scores_in_topic, wait_until, window_key
from tests.loopback import RecordingReceiver, serving

pytestmark = pytest.mark.integration


def fused_points(influx: InfluxV1) -> dict[str, set[int]]:
    """Window ends of the fused-score points, per asset."""
    result = influx.query("SELECT fused, asset_id FROM fusewatch_score")[0]
    points: dict[str, set[int]] = {}
    for end, _, asset in result.get("series", [{"values": []}])[0]["values"]:
        points.setdefault(asset, set()).add(end)
    return points


def point_count(influx: InfluxV1, measurement: str, field: str) -> int:
    result = influx.query(f"SELECT count({field}) FROM {measurement}")[0]
    return int(result["series"][0]["values"][0][1]) if "series" in result else 0


def windows_in_topic(kafka: KafkaSettings) -> dict[str, set[int]]:
    windows: dict[str, set[int]] = {}
    for score in scores_in_topic(kafka):
        asset, end = window_key(score)
        windows.setdefault(asset, set()).add(end)
    return windows


def simulate(kafka: KafkaSettings, simulated: PlantSimulator, registry: Path, speed: str = "max") -> None:
    config = simulated.config
    sent = cli(kafka, "simulate", "--kafka", kafka.bootstrap_servers, "--assets", str(config.assets), "--days",
               str(config.days), "--seed", str(config.seed), "--start", format_time(config.start_ns), "--speed", speed,
               "--assets-file", str(registry), "--no-progress")
    assert sent.returncode == 0, sent.stderr


def test_worker_then_sink_write_one_point_per_window_and_a_replay_changes_nothing(
    kafka: KafkaSettings, influxdb: InfluxV1, tmp_path: Path
) -> None:
    # yesterday 10:00-16:00 UTC: technicians write logs on the day shift (07-17 UTC), so the plant has some
    # whatever the time of day the test runs
    yesterday = (time.time_ns() // NS_PER_DAY - 1) * NS_PER_DAY
    simulated = plant(assets=2, days=0.25, start_ns=yesterday + 10 * NS_PER_HOUR)
    registry = tmp_path / "assets.json"
    simulate(kafka, simulated, registry)
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + "live", registry, "worker")
    try:
        wait_until(lambda: sum(map(len, windows_in_topic(kafka).values())) >= 2 * 360 - 4, 180, "windows scored",
                   worker)
        wait_until(worker.drained, 60, "every message processed", worker)  # no window closing at the stop
    finally:
        assert worker.stop() == 0, worker.tail()
    scored = windows_in_topic(kafka)
    group = kafka.topic_prefix + "sink"
    first = SinkProcess(kafka, tmp_path, influxdb.url, influxdb.database, group, "--stop-when-idle", "5",
                        "--worker-group", kafka.topic_prefix + "live", "--health-interval", "1", name="sink-1")
    stats = first.wait(120)
    assert fused_points(influxdb) == scored  # every window of the topic, once
    windows = sum(map(len, scored.values()))
    assert point_count(influxdb, "fusewatch_score", "fused") == windows
    assert point_count(influxdb, "fusewatch_features", "kurtosis") == windows
    logs = sum(1 for record in read_topics(kafka, [kafka.topics().maintenance_logs]))
    assert logs > 0 and point_count(influxdb, "fusewatch_log", "text") == logs
    alerts = {(a["asset_id"], a["transition"], a["ts"]) for r in read_topics(kafka, [kafka.topics().alerts])
              if (a := json.loads(r.value))}
    assert point_count(influxdb, "fusewatch_alert", "fused") == len(alerts)
    health = influxdb.query("SELECT scores, worker_lag, sink_lag FROM fusewatch_pipeline")[0]["series"][0]
    assert sum(row[1] for row in health["values"]) == stats["messages"][kafka.topics().scores] == windows
    worker_lag, sink_lag = health["values"][-1][2:]
    assert worker_lag >= 0 and sink_lag == 0  # both known; the sink drained

    # the same range replayed: a second worker group scores the inputs again, the sink writes every score again
    (tmp_path / "replay").mkdir()
    replay = WorkerProcess(kafka, tmp_path / "replay", kafka.topic_prefix + "replay", registry, "replay")
    try:
        wait_until(lambda: len(scores_in_topic(kafka)) >= 2 * windows, 180, "replayed windows scored", replay)
        wait_until(replay.drained, 60, "every message processed again", replay)
    finally:
        assert replay.stop() == 0, replay.tail()
    again = SinkProcess(kafka, tmp_path, influxdb.url, influxdb.database, group, "--stop-when-idle", "5",
                        name="sink-2").wait(120)
    assert again["messages"][kafka.topics().scores] >= windows  # written again ...
    assert windows_in_topic(kafka) == scored  # the replay closed the same windows ...
    assert fused_points(influxdb) == scored  # ... and they were written onto the same points
    assert point_count(influxdb, "fusewatch_score", "fused") == windows
    assert point_count(influxdb, "fusewatch_log", "text") == logs
    assert point_count(influxdb, "fusewatch_alert", "fused") == len(alerts)


def test_influxdb_down_60_s_mid_run_loses_nothing_and_commits_nothing_unwritten(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    influx = PrivateInfluxDB(tmp_path / "influxdb")
    influx.start()
    database = InfluxV1(influx.url, "fusewatch")
    database.query('CREATE DATABASE "fusewatch"', database="")
    simulated = plant(assets=3, days=0.1)
    registry = tmp_path / "assets.json"
    simulated.asset_registry().save(registry)
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + "live", registry, "worker")
    group = kafka.topic_prefix + "sink"
    scores_topic = kafka.topics().scores
    sink = SinkProcess(kafka, tmp_path, influx.url, "fusewatch", group, "--batch", "50", "--health-interval", "2",
                       "--worker-group", kafka.topic_prefix + "live")
    simulator = None
    simulate_log = open(tmp_path / "simulate.log", "wb")  # noqa: SIM115  # closed in the finally clause
    try:
        env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix}
        simulator = subprocess.Popen(  # 0.1 day at 100x plant speed: 86 s of wall time
            [sys.executable, "-m", "fusewatch.cli", "simulate", "--kafka", kafka.bootstrap_servers, "--assets", "3",
             "--days", "0.1", "--seed", str(simulated.config.seed), "--start", format_time(simulated.config.start_ns),
             "--speed", "100", "--no-progress"], env=env, stdout=simulate_log, stderr=subprocess.STDOUT)
        wait_until(lambda: point_count(database, "fusewatch_score", "fused") >= 60, 90, "the first points", worker)
        before = point_count(database, "fusewatch_score", "fused")
        rss_before = sink.rss_bytes()
        influx.stop()
        stopped = time.monotonic()
        time.sleep(5)  # a write that was already done when the server stopped may still commit
        frozen = committed(kafka, group, scores_topic)
        rss_peak = 0
        while time.monotonic() - stopped < 60:
            assert committed(kafka, group, scores_topic) == frozen, "an offset was committed while InfluxDB was down"
            rss_peak = max(rss_peak, sink.rss_bytes())
            time.sleep(2)
        backlog = windows_behind(kafka, frozen)
        influx.start()
        restarted = time.monotonic()
        stored = fused_points(database)
        below = scores_below(kafka, frozen)
        missing = [key for key in below if key[1] not in stored.get(key[0], set())]
        assert not missing, f"committed past {len(missing)} unwritten points, e.g. {missing[:3]}"
        assert simulator.wait(timeout=180) == 0, (tmp_path / "simulate.log").read_text()
        wait_until(lambda: sum(map(len, windows_in_topic(kafka).values())) >= 3 * 144 - 6, 120,
                   "every window scored", worker)
        wait_until(worker.drained, 60, "every message processed", worker)  # no window scored after the next wait
        wait_until(lambda: committed(kafka, group, scores_topic) == end_offsets(kafka), 120, "the sink caught up")
        drain_s = time.monotonic() - restarted
        expected = windows_in_topic(kafka)
        written = fused_points(database)
        stats = sink.stop()
    finally:
        if simulator is not None and simulator.poll() is None:
            simulator.kill()
        simulate_log.close()
        worker.stop()
        influx.stop()
    n_expected, n_written = sum(map(len, expected.values())), sum(map(len, written.values()))
    print(f"\noutage 60 s: points before {before}, backlog at restart {backlog} windows; expected {n_expected},"
          f" written {n_written}; drain {drain_s:.1f} s after restart; sink RSS {rss_before / 2**20:.1f} MiB before,"
          f" peak {rss_peak / 2**20:.1f} MiB during; {json.dumps(stats)}")
    assert written == expected and n_written == n_expected
    assert backlog > 50, "the outage should leave a backlog larger than one batch"
    assert stats["outages"] >= 1 and stats["outage_s"] >= 55
    assert stats["max_batch"] <= 50
    assert rss_peak - rss_before < 16 * 2**20, "memory grew during the outage"


def end_offsets(kafka: KafkaSettings) -> dict[int, int]:
    """The end offset of every non-empty partition of the scores topic."""
    ranges = offset_ranges(kafka, [kafka.topics().scores], None, None)
    return {tp.partition: end for tp, (_, end) in ranges.items() if end > 0}


def scores_below(kafka: KafkaSettings, offsets: dict[int, int]) -> set[tuple[str, int]]:
    """(asset, window end) of the score messages below ``offsets`` (what the sink has committed)."""
    return {window_key(json.loads(record.value)) for record in read_topics(kafka, [kafka.topics().scores])
            if record.offset < offsets.get(record.partition, 0)}


def windows_behind(kafka: KafkaSettings, offsets: dict[int, int]) -> int:
    ends = end_offsets(kafka)
    return sum(end - offsets.get(partition, 0) for partition, end in ends.items())


# ------------------------------------------------------------------ bad messages and webhooks

RECEIVED: list[tuple[dict[str, str], bytes]] = []


class Receiver(RecordingReceiver):
    received = RECEIVED


def score(asset: str, minute: int) -> Score:
    end = parse_time("2026-11-30T00:00:00Z") + minute * NS_PER_MIN
    return Score(asset_id=asset, window_start=end - NS_PER_MIN, window_end=end, fused=0.5,
                 calibrated={"vibration": 0.5}, raw={"vibration": 1.0}, contributions={"vibration": 0.5},
                 present={"vibration": True, "camera": False, "logs": False}, leading="vibration",
                 top_features=[("kurtosis", 2.0)], warmup=False, model_version="v", run_id="live",
                 features={"kurtosis": 3.0})


def alert(asset: str, minute: int, transition: str) -> Alert:
    end = parse_time("2026-11-30T00:00:00Z") + minute * NS_PER_MIN
    return Alert(alert_id=f"{asset}-1", asset_id=asset, ts=end, transition=transition,  # type: ignore[arg-type]
                 severity="warning", fused=0.9, contributions={"vibration": 0.9}, leading="vibration",
                 top_features=[("kurtosis", 2.0)], opened_at=end, run_id="live")


def test_bad_messages_are_dead_letters_and_alerts_reach_the_webhook_once(
    kafka: KafkaSettings, influxdb: InfluxV1, tmp_path: Path
) -> None:
    topics = kafka.topics()
    seed_ts = alert("pump-1", 1, "opened").ts  # the same shard as the alerts: `severity` is a float there now
    influxdb.write(f"fusewatch_alert,asset_id=seed,run_id=x,transition=opened severity=1.0 {seed_ts}")
    producer = KafkaProducer(bootstrap_servers=kafka.servers(), acks="all")
    good = [score("pump-1", minute) for minute in range(1, 11)]
    for message in good:
        producer.send(topics.scores, key=b"pump-1", value=message.model_dump_json().encode())
    producer.send(topics.scores, key=b"pump-1", value=b'{"asset_id": "pump-1", "fused": "high"}')
    producer.send(topics.scores, key=b"pump-1", value=b"\xff not json")
    transitions = [alert("pump-1", 3, "opened"), alert("pump-1", 9, "closed")]
    for _ in range(2):  # the same transitions twice, as after a replay
        for transition in transitions:
            producer.send(topics.alerts, key=b"pump-1", value=transition.model_dump_json().encode())
    producer.flush()
    producer.close()
    secret = WebhookSecret.generate()
    RECEIVED.clear()
    with serving(Receiver) as port:
        sink = SinkProcess(kafka, tmp_path, influxdb.url, influxdb.database, kafka.topic_prefix + "sink",
                           "--stop-when-idle", "5", "--webhook", f"http://127.0.0.1:{port}/hook",
                           "--allow-private-webhooks", env={"FUSEWATCH_WEBHOOK_SECRET": str(secret)})
        stats = sink.wait(120)
        wait_until(lambda: len(RECEIVED) >= 2, 30, "two deliveries")
        time.sleep(1)
    assert point_count(influxdb, "fusewatch_score", "fused") == 10
    letters = [json.loads(r.value) for r in read_topics(kafka, [topics.dead_letter])]
    reasons = sorted(letter["error"].split(":")[0] for letter in letters)
    assert reasons == ["invalid"] * 2 + ["refused by InfluxDB"] * 4, letters  # every alert message is refused
    assert all(letter["source_topic"] in (topics.scores, topics.alerts) for letter in letters)
    assert stats["dead_letters_sent"] == 6
    delivered = sorted((json.loads(body)["transition"], headers["webhook-id"]) for headers, body in RECEIVED)
    assert [transition for transition, _ in delivered] == ["closed", "opened"]  # each once, despite the repeat
    for headers, body in RECEIVED:
        Webhook(str(secret)).verify(body, headers)


def test_operator_instructions_travel_with_the_log_and_are_stored_as_entries(
    kafka: KafkaSettings, influxdb: InfluxV1, tmp_path: Path
) -> None:
    ack = cli(kafka, "alerts", "ack", "pump-1", "--kafka", kafka.bootstrap_servers, "--by", "ana", "--at",
              "2026-11-30T10:00:00Z")
    window = cli(kafka, "alerts", "maintenance", "pump-1", "--kafka", kafka.bootstrap_servers, "--by", "ben",
                 "--from", "2026-11-30T11:00:00Z", "--to", "2026-11-30T13:00:00Z", "--note", "bearing swap")
    assert ack.returncode == 0 and window.returncode == 0, ack.stderr + window.stderr
    assert "acknowledge at 2026-11-30T10:00:00Z" in ack.stdout
    records = list(read_topics(kafka, [kafka.topics().maintenance_logs]))
    assert [r.key for r in records] == [b"pump-1", b"pump-1"]  # the asset's partition, in order with its data
    SinkProcess(kafka, tmp_path, influxdb.url, influxdb.database, kafka.topic_prefix + "sink",
                "--stop-when-idle", "3").wait(60)
    rows = influxdb.query('SELECT "text", "kind", "author" FROM fusewatch_log')[0]["series"][0]["values"]
    assert [row[2:] for row in rows] == [["acknowledge", "ana"], ["maintenance", "ben"]]
    assert rows[1][1].endswith(": bearing swap") and rows[1][0] == parse_time("2026-11-30T11:00:00Z")


def test_the_workers_event_time_reports_reach_the_pipeline_health_points(
    kafka: KafkaSettings, influxdb: InfluxV1, tmp_path: Path
) -> None:
    topic = kafka.topics().worker_health
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    reports = [
        WorkerHealth(worker="w1", ts=time.time_ns(), partitions=[0, 1], held_bytes=3 << 20, window_bytes=1 << 20,
                     paused=1, event_time_lag_s={"vibration": 42.0, "camera": 3.0, "logs": 5400.0}),
        WorkerHealth(worker="w2", ts=time.time_ns(), partitions=[2], held_bytes=1 << 20, window_bytes=0, paused=0,
                     event_time_lag_s={"vibration": 7.0, "camera": 95.5}),
    ]
    for report in reports:
        producer.send(topic, key=report.worker.encode(), value=report.model_dump_json().encode())
    producer.send(topic, key=b"w3", value=b"{not a report")  # ignored, with a warning; the sink goes on
    producer.flush()
    producer.close()
    sink = SinkProcess(kafka, tmp_path, influxdb.url, influxdb.database, kafka.topic_prefix + "sink",
                       "--stop-when-idle", "3", "--health-interval", "1")
    sink.wait(60)
    rows = influxdb.query('SELECT "vibration_lag_s", "camera_lag_s", "logs_lag_s", "workers", "held_bytes", '
                          '"paused_inputs" FROM fusewatch_pipeline')[0]["series"][0]["values"]
    assert rows[-1][1:] == [42.0, 95.5, 5400.0, 2, 4 << 20, 1]  # the worst lag of the two, the sums
    assert "not a worker report" in sink.log.read_text()


def test_a_consumer_whose_group_membership_hangs_is_replaced_and_nothing_is_lost(
    kafka: KafkaSettings, influxdb: InfluxV1, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kafka-python 3.0 was seen (on the three-broker cluster, once in six runs) to stop after electing itself
    leader of a rejoin: for minutes every commit was refused as "rebalance in progress". That state cannot be
    brought about on demand, so the first consumer's commits are refused here the way kafka-python refuses them;
    the agent must replace it with a consumer that joins afresh, and every score must end up written and
    committed."""
    topics = kafka.topics()
    producer = KafkaProducer(bootstrap_servers=kafka.servers(), acks="all")
    for minute in range(1, 41):
        producer.send(topics.scores, key=b"pump-%d" % (minute % 4), value=score(f"pump-{minute % 4}", minute)
                      .model_dump_json().encode())
    producer.flush()
    producer.close()
    opened: list[KafkaConsumer] = []
    open_consumer = SinkAgent._open_consumer

    def hung_first(agent: SinkAgent) -> KafkaConsumer:
        consumer = open_consumer(agent)
        if not opened:
            def refuse(*args: object, **kwargs: object) -> None:
                raise RebalanceInProgressError("the consumer is not part of an active group")
            consumer.commit = refuse
        opened.append(consumer)
        return consumer

    monkeypatch.setattr(SinkAgent, "_open_consumer", hung_first)
    group = kafka.topic_prefix + "hung-sink"
    influx = open_sink(influxdb.url, influxdb.database)
    agent = SinkAgent(kafka, influx, options=SinkOptions(group=group, batch_messages=10, rejoin_after_s=2.0,
                                                          stop_when_idle_s=8.0))
    try:
        stats = agent.run()
    finally:
        agent.close()
        influx.close()
    assert stats.rejoins == 1 and len(opened) == 2
    assert point_count(influxdb, "fusewatch_score", "fused") == 40
    assert committed(kafka, group, topics.scores) == end_offsets(kafka)
