"""Event time with the producer and the worker running together on the real broker: nothing is late when the
topics of a partition arrive skewed, and the worker's scores equal the embedded runner's window for window."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectors.kafka.admin import create_topics, delete_topics, topic_names
from connectors.kafka.consumer import read_topics
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_HOUR, format_time
from tests.integration.conftest import unique_prefix
from tests.integration.test_worker import cli
from tests.integration.workers import (
    WorkerProcess,
    assert_same_scores,
    embedded_scores,
    scores_in_topic,
    wait_until,
    window_key,
)

pytestmark = pytest.mark.integration


def simulated_plant(seed: int, assets: int, hours: float) -> PlantSimulator:
    """A plant that ends about now (the broker keeps 7 days, and events may not be ahead of the clock)."""
    start = (time.time_ns() - round(hours * NS_PER_HOUR)) // (60 * 10**9) * 60 * 10**9
    return PlantSimulator(SimulatorConfig(assets=assets, days=hours / 24, seed=seed, start_ns=start))


def dead_letters(kafka: KafkaSettings) -> list[dict[str, Any]]:
    return [json.loads(record.value) for record in read_topics(kafka, [kafka.topics().dead_letter])]


def started_worker(kafka: KafkaSettings, tmp_path: Path, registry: Path, name: str) -> WorkerProcess:
    """A worker that owns every partition and waits for input (the live case: it runs before the producer)."""
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + name, registry, name)
    wait_until(lambda: (worker.health() or {}).get("partitions") == list(range(kafka.partitions)), 90,
               "the worker's assignment", worker)
    return worker


@pytest.mark.parametrize(("seed", "assets"), [(11, 3), (12, 6), (13, 12)])
def test_simulate_into_a_running_worker_loses_nothing_and_equals_the_embedded_runner(
    kafka: KafkaSettings, tmp_path: Path, seed: int, assets: int
) -> None:
    plant = simulated_plant(seed, assets, hours=12)
    registry = tmp_path / "assets.json"
    plant.asset_registry().save(registry)
    worker = started_worker(kafka, tmp_path, registry, "live")
    try:
        sent = cli(kafka, "simulate", "--kafka", kafka.bootstrap_servers, "--assets", str(assets), "--days", "0.5",
                   "--seed", str(seed), "--start", format_time(plant.config.start_ns), "--speed", "max",
                   "--no-progress")
        assert sent.returncode == 0, sent.stderr
        expected = embedded_scores(plant)
        wait_until(lambda: len({window_key(s) for s in scores_in_topic(kafka)}) >= len(expected) - 2 * assets,
                   300, "all windows scored", worker)
        wait_until(worker.drained, 60, "every message processed", worker)
        health = worker.health()
        assert health is not None and set(health["event_time_lag_s"]) == {"vibration", "camera", "logs"}
    finally:
        assert worker.stop() == 0, worker.tail()
    letters = dead_letters(kafka)
    assert not letters, f"{len(letters)} dead letters, e.g. {letters[0]['error']}"
    assert_same_scores(expected, scores_in_topic(kafka))


def test_replay_into_a_running_worker_loses_nothing_and_equals_the_recording_scored_embedded(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    plant = simulated_plant(seed=14, assets=4, hours=12)
    start, end = plant.config.start_ns, plant.config.start_ns + 12 * NS_PER_HOUR
    registry = tmp_path / "assets.json"
    sent = cli(kafka, "simulate", "--kafka", kafka.bootstrap_servers, "--assets", "4", "--days", "0.5", "--seed",
               "14", "--start", format_time(start), "--speed", "max", "--assets-file", str(registry), "--no-progress")
    assert sent.returncode == 0, sent.stderr
    recorded = cli(kafka, "record", "--kafka", kafka.bootstrap_servers, "--from", format_time(start), "--to",
                   format_time(end), "--out", str(tmp_path / "rec"), "--no-progress")
    assert recorded.returncode == 0, recorded.stderr
    report = tmp_path / "embedded"
    scored = cli(kafka, "backtest", "--source", str(tmp_path / "rec"), "--from", format_time(start), "--to",
                 format_time(end), "--report", str(report), "--assets-file", str(registry), "--no-progress")
    assert scored.returncode == 0, scored.stderr
    with np.load(report / "windows.npz") as windows:
        embedded = {(str(a), int(t)): float(f) for a, t, f in zip(windows["asset_id"], windows["window_end"],
                                                                   windows["configured"], strict=True)}

    live = kafka.model_copy(update={"topic_prefix": unique_prefix()})  # a deployment's topics, empty
    create_topics(live)
    try:
        worker = started_worker(live, tmp_path, registry, "replayed")
        try:
            replayed = cli(live, "replay", "--source", str(tmp_path / "rec"), "--kafka", live.bootstrap_servers,
                              "--speed", "max", "--into", "live", "--no-progress")
            assert replayed.returncode == 0, replayed.stderr
            wait_until(lambda: len(scores_in_topic(live)) >= len(embedded) - 2 * 4, 300, "replayed scores", worker)
            wait_until(worker.drained, 60, "every message processed", worker)
        finally:
            assert worker.stop() == 0, worker.tail()
        assert dead_letters(live) == []
        got = {window_key(s): s for s in scores_in_topic(live)}
        assert set(got) <= set(embedded) and len(set(embedded) - set(got)) <= 2 * 4  # the newest stay open live
        assert all(abs(got[key]["fused"] - embedded[key]) <= 1e-6 for key in got)  # float32 in windows.npz
    finally:
        delete_topics(live, topic_names(live))

