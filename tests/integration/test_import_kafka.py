"""`fusewatch import` into the real Kafka input topics, read back; and a backtest of an imported recording."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from connectors.ingest.files.targets import partition_of
from connectors.kafka.consumer import read_topics
from fusewatch.cli import main as fusewatch_main
from fusewatch.commands.import_files import register
from fusewatch.core.codec import decode
from fusewatch.core.events import MaintenanceLog, VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_MS, NS_PER_S, format_time

pytestmark = pytest.mark.integration


def cli(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="fusewatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["import", *map(str, argv)])
    status: int = args.run(args)
    return status


def _stamp(ns: int) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // NS_PER_S))


def test_import_into_kafka_read_back(kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # recent event times: brokers apply retention to record timestamps (docs/import.md)
    start = (time.time_ns() // NS_PER_S - 600) * NS_PER_S
    rng = np.random.default_rng(1)
    sent: dict[str, np.ndarray] = {}
    for asset in ("pump-01", "motor-02"):
        samples = rng.normal(0, 0.2, 2500).astype(np.float32)
        wavfile.write(tmp_path / f"{asset}_{_stamp(start)}.wav", 1000, samples)
        sent[asset] = samples
    orders = tmp_path / "orders.csv"
    orders.write_text(f"asset,when,text\npump-01,{format_time(start + 2 * NS_PER_S)},bearing noise\n"
                      f"motor-02,{format_time(start + NS_PER_S)},inspection ok\n")
    monkeypatch.setenv("FUSEWATCH_KAFKA__TOPIC_PREFIX", kafka.topic_prefix)
    assert cli("vibration", *sorted(tmp_path.glob("*.wav")), "--time-pattern", "{asset_id}_%Y%m%dT%H%M%S.wav",
               "--kafka", kafka.bootstrap_servers, "--no-progress") == 0
    assert cli("logs", orders, "--map", "asset=asset,time=when,text=text", "--kafka", kafka.bootstrap_servers,
               "--no-progress") == 0
    topics = kafka.topics()
    records = list(read_topics(kafka, list(topics.inputs)))
    assert len(records) == 2 * 3 + 2
    received: dict[str, list[VibrationChunk]] = {}
    for record in records:
        event = decode(record.value)
        assert record.key == event.asset_id.encode()
        assert record.partition == partition_of(record.key, kafka.partitions)
        assert record.timestamp_ms == event.ts // NS_PER_MS
        if isinstance(event, VibrationChunk):
            assert record.topic == topics.vibration
            received.setdefault(event.asset_id, []).append(event)
        else:
            assert isinstance(event, MaintenanceLog) and record.topic == topics.maintenance_logs
    for asset, samples in sent.items():
        chunks = received[asset]
        assert [c.ts - start for c in chunks] == [0, NS_PER_S, 2 * NS_PER_S]  # in time order, within the partition
        # 32-bit float WAV: the samples arrive bit for bit
        assert np.concatenate([c.samples for c in chunks]).tobytes() == samples.tobytes()


@pytest.mark.slow
def test_backtest_runs_on_an_imported_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = 1_767_600_000 * NS_PER_S  # 2026-01-05T08:00:00Z
    rng = np.random.default_rng(2)
    minutes = 12
    for asset in ("pump-01", "pump-02"):
        t = np.arange(minutes * 60 * 2000) / 2000
        wobble = np.where(t > 480, 0.5 * np.sin(2 * np.pi * 157 * t), 0.0) if asset == "pump-02" else 0.0
        samples = (np.sin(2 * np.pi * 50 * t) + rng.normal(0, 0.1, t.size) + wobble).astype(np.float32)
        wavfile.write(tmp_path / f"{asset}_{_stamp(start)}.wav", 2000, samples)
    (tmp_path / "labels.csv").write_text(
        f"asset_id,fault_start,failure\npump-02,{format_time(start + 480 * NS_PER_S)},"
        f"{format_time(start + 700 * NS_PER_S)}\n")
    rec = tmp_path / "rec"
    assert cli("vibration", *sorted(tmp_path.glob("*.wav")), "--time-pattern", "{asset_id}_%Y%m%dT%H%M%S.wav",
               "--every", "5s", "--out", rec, "--no-progress") == 0
    assert cli("labels", tmp_path / "labels.csv", "--out", rec, "--no-progress") == 0
    report = tmp_path / "bt"
    assert fusewatch_main(["backtest", "--source", str(rec), "--labels", str(rec / "labels.csv"), "--report",
                           str(report), "--run-id", "imported", "--no-progress"]) == 0
    summary = json.loads((report / "summary.json").read_text())
    details = summary["details"]
    assert details["messages"] == 2 * minutes * 12
    assert details["windows"] >= 2 * (minutes - 1)
    assert len(details["events"]) == 1 and details["dead_letters"]["count"] == 0
    assert "run imported" in capsys.readouterr().out
