"""Record → replay → backtest worker on the real broker: the live run's scores again, live data untouched;
paced replays keep to plant time; damaged recordings are refused before anything is sent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from connectors.kafka.admin import delete_topics, describe_topics, topic_names
from connectors.kafka.consumer import offset_ranges, read_topics
from connectors.kafka.replay import target_settings
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import format_time
from tests.integration.conftest import InfluxV1
from tests.integration.sinks import SinkProcess
from tests.integration.test_worker import cli, plant, scored
from tests.integration.workers import WorkerProcess, scores_in_topic, wait_until, window_key

pytestmark = pytest.mark.integration


def end_offsets(kafka: KafkaSettings) -> dict[tuple[str, int], int]:
    """The end offset of every partition of the seven topics."""
    return {(tp.topic, tp.partition): end for tp, (_, end) in offset_ranges(kafka, topic_names(kafka), None,
                                                                            None).items()}


def inputs(kafka: KafkaSettings) -> list[tuple[str, int, int, int, bytes | None, bytes]]:
    """(kind, partition, offset, timestamp, key, value) of every input message, by partition and offset."""
    prefix = kafka.topic_prefix
    return sorted((r.topic.removeprefix(prefix), r.partition, r.offset, r.timestamp_ms, r.key, r.value)
                  for r in read_topics(kafka, kafka.topics().inputs))


def test_record_then_replay_into_a_backtest_reproduces_the_live_scores(
    kafka: KafkaSettings, influxdb: InfluxV1, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the windows after an asset's last frame close once its camera was silent modality_idle_s of processing time:
    # 20 s instead of 120 s (the whole history is on the broker before each worker starts, so nothing is late)
    monkeypatch.setenv("FUSEWATCH_ALIGNER__MODALITY_IDLE_S", "20")
    simulated = plant(assets=2, days=0.125)
    start, end = simulated.config.start_ns, simulated.config.start_ns + 3 * 3600 * 10**9
    registry = tmp_path / "assets.json"
    sent = cli(kafka, "simulate", "--kafka", kafka.bootstrap_servers, "--assets", "2", "--days", "0.125", "--seed",
               "5", "--start", format_time(start), "--speed", "max", "--assets-file", str(registry), "--no-progress")
    assert sent.returncode == 0, sent.stderr
    live = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + "live", registry, "live")
    try:
        wait_until(lambda: scored(kafka, 360 - 2), 180, "live scores", live)
        wait_until(live.drained, 60, "every message processed", live)
    finally:
        assert live.stop() == 0, live.tail()
    live_scores = {window_key(s): s for s in scores_in_topic(kafka)}

    recorded = cli(kafka, "record", "--kafka", kafka.bootstrap_servers, "--from", format_time(start), "--to",
                   format_time(end), "--out", str(tmp_path / "rec"), "--no-progress")
    assert recorded.returncode == 0, recorded.stderr
    manifest = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["messages"] == len(inputs(kafka))
    before = end_offsets(kafka)

    for source, name in (("kafka", "from-kafka"), (str(tmp_path / "rec"), "from-recording")):  # scored directly
        report = tmp_path / name
        done = cli(kafka, "backtest", "--source", source, "--kafka", kafka.bootstrap_servers, "--from",
                   format_time(start), "--to", format_time(end), "--report", str(report), "--run-id", name,
                   "--assets-file", str(registry), "--no-progress")
        assert done.returncode == 0, done.stderr
        with np.load(report / "windows.npz") as windows:
            got = {(str(a), int(t)): float(f) for a, t, f in zip(windows["asset_id"], windows["window_end"],
                                                                  windows["configured"], strict=True)}
        extra = set(got) - set(live_scores)  # the end of the history closes the windows a live worker holds open
        assert set(live_scores) <= set(got) and len(extra) <= 2, name
        assert all(end == max(e for a, e in got if a == asset) for asset, end in extra), name
        assert all(abs(got[key] - score["fused"]) <= 1e-6 for key, score in live_scores.items()), name  # float32
        assert json.loads((report / "run.json").read_text())["run_id"] == name

    replayed = cli(kafka, "replay", "--source", str(tmp_path / "rec"), "--kafka", kafka.bootstrap_servers,
                   "--speed", "max", "--into", "backtest", "--run-id", "bt1", "--no-progress")
    assert replayed.returncode == 0, replayed.stderr
    assert f"FUSEWATCH_KAFKA__TOPIC_PREFIX={kafka.topic_prefix}backtest.bt1." in replayed.stdout
    backtest = target_settings(kafka, "backtest", "bt1")
    try:
        assert inputs(backtest) == inputs(kafka)  # every message: partition, offset, timestamp, key and bytes
        (tmp_path / "bt1").mkdir()
        worker = WorkerProcess(backtest, tmp_path / "bt1", f"fusewatch-{kafka.topic_prefix}bt1", registry, "bt1",
                               run_id="bt1")
        try:
            wait_until(lambda: len(scores_in_topic(backtest)) >= len(live_scores), 180, "backtest scores", worker)
            wait_until(worker.drained, 60, "every message processed", worker)
        finally:
            assert worker.stop() == 0, worker.tail()
        again = {window_key(s): s for s in scores_in_topic(backtest)}
        assert set(again) == set(live_scores)  # the same windows ...
        for key, score in again.items():  # ... with the same values, under the backtest's run id
            reference = live_scores[key]
            assert score["run_id"] == "bt1" and reference["run_id"] == "live"
            assert abs(score["fused"] - reference["fused"]) <= 1e-9, key
            assert score["calibrated"].keys() == reference["calibrated"].keys()
            assert all(abs(v - reference["calibrated"][m]) <= 1e-9 for m, v in score["calibrated"].items()), key
        assert end_offsets(kafka) == before  # the live topics got nothing

        for settings, name in ((kafka, "live"), (backtest, "bt1")):  # both runs into one database, by run id
            SinkProcess(settings, tmp_path, influxdb.url, influxdb.database, f"{settings.topic_prefix}sink",
                        "--stop-when-idle", "3", name=f"sink-{name}").wait(120)
        counts = influxdb.query("SELECT count(fused) FROM fusewatch_score GROUP BY run_id")[0]["series"]
        assert {s["tags"]["run_id"]: s["values"][0][1] for s in counts} == {"live": len(live_scores),
                                                                            "bt1": len(live_scores)}
    finally:
        delete_topics(backtest, topic_names(backtest))


def test_a_paced_replay_keeps_to_plant_time_and_a_damaged_recording_sends_nothing(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    simulated = plant(assets=2, days=0.01)  # 14 minutes of plant time
    start = simulated.config.start_ns
    sent = cli(kafka, "simulate", "--kafka", kafka.bootstrap_servers, "--assets", "2", "--days", "0.01", "--seed",
               "5", "--start", format_time(start), "--speed", "max", "--no-progress")
    assert sent.returncode == 0, sent.stderr
    end = start + 6 * 60 * 10**9  # six minutes of plant time: 36 s at 10x
    recorded = cli(kafka, "record", "--kafka", kafka.bootstrap_servers, "--from", format_time(start), "--to",
                   format_time(end), "--out", str(tmp_path / "rec"), "--no-progress")
    assert recorded.returncode == 0, recorded.stderr
    paced = cli(kafka, "replay", "--source", str(tmp_path / "rec"), "--kafka", kafka.bootstrap_servers, "--speed",
                "10", "--run-id", "paced", "--no-progress")
    assert paced.returncode == 0, paced.stderr
    line = next(line for line in paced.stdout.splitlines() if line.startswith("replayed"))
    print("\n" + line)
    achieved = float(line.split("plant speed ")[1].split("x")[0])
    assert achieved <= 10.05  # never ahead of the requested plant time
    assert "(requested 10x)" in line
    backtest = target_settings(kafka, "backtest", "paced")
    try:
        stamps = [stamp for _, _, _, stamp, _, _ in inputs(backtest)]
        assert stamps and min(stamps) >= start // 10**6 and max(stamps) < end // 10**6
    finally:
        delete_topics(backtest, topic_names(backtest))
    from_kafka = cli(kafka, "replay", "--source", "kafka", "--kafka", kafka.bootstrap_servers, "--from",
                     format_time(start), "--to", format_time(end), "--run-id", "from-kafka", "--no-progress")
    assert from_kafka.returncode == 0, from_kafka.stderr
    copied = target_settings(kafka, "backtest", "from-kafka")
    try:
        in_range = [m for m in inputs(kafka) if start // 10**6 <= m[3] < end // 10**6]
        assert [m[:2] + m[3:] for m in inputs(copied)] == [m[:2] + m[3:] for m in in_range]  # offsets start at 0
    finally:
        delete_topics(copied, topic_names(copied))

    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "rec", damaged)
    victim = next((damaged / "frames").glob("*.tar"))
    victim.write_bytes(victim.read_bytes()[:-512])
    refused = cli(kafka, "replay", "--source", str(damaged), "--kafka", kafka.bootstrap_servers, "--run-id",
                  "broken", "--no-progress")
    assert refused.returncode == 2 and victim.name in refused.stderr and "truncated" in refused.stderr
    broken = target_settings(kafka, "backtest", "broken")
    assert all(state.status == "missing" for state in describe_topics(broken, topic_names(broken)))
    into_itself = cli(kafka, "replay", "--source", "kafka", "--kafka", kafka.bootstrap_servers, "--into", "live")
    assert into_itself.returncode == 2 and "duplicate" in into_itself.stderr


def test_an_interrupted_recording_resumes_and_equals_an_uninterrupted_one(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.kafka import record as record_module
    from connectors.sources.recording import Recording

    simulated = plant(assets=2, days=0.01)
    sent = cli(kafka, "simulate", "--kafka", kafka.bootstrap_servers, "--assets", "2", "--days", "0.01", "--seed",
               "5", "--start", format_time(simulated.config.start_ns), "--speed", "max", "--no-progress")
    assert sent.returncode == 0, sent.stderr
    record_module.record(kafka, None, None, tmp_path / "whole", progress=False)
    from connectors.kafka.consumer import read_partition as reader

    def failing(*args: object, **kwargs: object) -> object:  # the broker goes away after 7 messages
        for count, message in enumerate(reader(*args, **kwargs), start=1):  # type: ignore[arg-type]
            if count > 7:
                raise KeyboardInterrupt
            yield message

    monkeypatch.setattr(record_module, "read_partition", failing)
    with pytest.raises(KeyboardInterrupt):
        record_module.record(kafka, None, None, tmp_path / "resumed", progress=False)
    partial = Recording(tmp_path / "resumed")
    assert not partial.complete and partial.count() == 7  # the complete part survives
    monkeypatch.setattr(record_module, "read_partition", reader)
    again = record_module.record(kafka, None, None, tmp_path / "resumed", progress=False)
    assert again.resumed and again.messages == again.total - 7
    whole, resumed = Recording(tmp_path / "whole"), Recording(tmp_path / "resumed")
    resumed.verify()
    assert list(resumed.messages()) == list(whole.messages())
