"""InfluxDB sinks: the v1 backend against the real InfluxDB server; replays overwrite instead of duplicating."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.sinks.influx.points import SCORES, alert_line, features_line, score_line
from connectors.sinks.influx.writers import InfluxV1Sink, detect_api
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import encode
from fusewatch.core.errors import SinkRejectedError, SinkUnavailableError
from fusewatch.core.events import MaintenanceLog
from fusewatch.core.topics import Topics
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner
from streams.settings import StreamSettings
from tests.integration.conftest import InfluxV1

pytestmark = pytest.mark.integration


def _scored_plant() -> tuple[list[str], int]:
    plant = PlantSimulator(SimulatorConfig(assets=2, days=0.1, seed=2))
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(StreamSettings(), output, assets=plant.asset_registry()))
    topics = Topics()
    for event in plant.events():
        runner.publish(topics.for_event(event), event.asset_id.encode(), encode(event), event.ts)
        runner.pump()
    runner.finish()
    lines = [score_line(s.score) for s in output.scored]
    lines += [line for s in output.scored if (line := features_line(s.score))]
    lines += [alert_line(a) for a in output.alerts]
    return lines, len(output.scored)


def _count(influxdb: InfluxV1) -> int:
    result = influxdb.query(f"SELECT count(fused) FROM {SCORES}")[0]
    return int(result["series"][0]["values"][0][1]) if "series" in result else 0


def test_one_point_per_window_and_a_replay_overwrites(influxdb: InfluxV1) -> None:
    lines, windows = _scored_plant()
    sink = InfluxV1Sink(influxdb.url, influxdb.database, batch_lines=100)
    sink.write(lines)
    assert _count(influxdb) == windows == 288
    sink.write(lines)  # the same range again, e.g. a worker restarted from older offsets
    assert _count(influxdb) == windows
    per_asset = influxdb.query(f"SELECT count(fused) FROM {SCORES} GROUP BY asset_id")[0]["series"]
    counts = sorted((s["tags"]["asset_id"], s["values"][0][1]) for s in per_asset)
    assert counts == [("motor-02", 144), ("pump-01", 144)]
    features = influxdb.query("SELECT count(kurtosis) FROM fusewatch_features")[0]["series"][0]["values"][0][1]
    assert features == windows


def test_refused_points_and_an_unreachable_server_raise_without_dropping(influxdb: InfluxV1) -> None:
    sink = InfluxV1Sink(influxdb.url, influxdb.database)
    sink.write(["m,asset_id=a value=1.0 1"])
    with pytest.raises(SinkRejectedError, match="400"):
        sink.write(["m,asset_id=a value=\"text\" 2"])  # a field's type cannot change
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SinkUnavailableError, match="unreachable"):
        InfluxV1Sink(f"http://127.0.0.1:{port}", "x", timeout_s=2).write(["m value=1.0 1"])


def test_the_api_is_detected_from_ping(influxdb: InfluxV1) -> None:
    assert detect_api(influxdb.url) == "v1"  # Debian's InfluxDB 1.6.7


def test_the_demo_writes_one_point_per_window_and_a_rerun_overwrites(influxdb: InfluxV1, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "fusewatch.cli", "demo", "--assets", "2", "--days", "0.1", "--seed", "1", "--out",
               str(tmp_path), "--influx", influxdb.url, "--influx-db", influxdb.database, "--no-progress"]
    plant = PlantSimulator(SimulatorConfig(assets=2, days=0.1, seed=1))
    logs = sum(isinstance(event, MaintenanceLog) for event in plant.events())
    assert logs > 0
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        points = 2 * 288 + logs  # scores, features, log entries
        assert f"influxdb: {points} points to {influxdb.url} ({influxdb.database})" in done.stdout
        assert _count(influxdb) == 288
        stored_logs = influxdb.query("SELECT count(text) FROM fusewatch_log")[0]["series"][0]["values"][0][1]
        assert stored_logs == logs
    unreachable = subprocess.run([*command[:-5], "--influx", "http://127.0.0.1:9", "--no-progress"],
                                 capture_output=True, text=True, timeout=120, check=False)
    assert unreachable.returncode == 2 and "is unreachable" in unreachable.stderr
