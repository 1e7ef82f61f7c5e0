"""Event time with the producer and the worker running together on the real broker: nothing is late when the
topics of a partition arrive skewed, and the worker's scores equal the embedded runner's window for window."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectors.kafka.admin import create_topics, delete_topics, topic_names
from connectors.kafka.consumer import read_topics
from connectors.kafka.producer import EventProducer
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core import __version__
from fusewatch.core.codec import decode
from fusewatch.core.events import VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_HOUR, format_time, parse_time
from models.bundle import write_bundle
from models.priors import AssetHistory, fit_priors
from streams.model_config import ModelConfig
from streams.settings import StreamSettings
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
from tests.unit.test_fusion_stage import toy_gate

pytestmark = pytest.mark.integration


def simulated_plant(seed: int, assets: int, hours: float) -> PlantSimulator:
    """A plant that ends about now (the broker keeps 7 days, and events may not be ahead of the clock)."""
    start = (time.time_ns() - round(hours * NS_PER_HOUR)) // (60 * 10**9) * 60 * 10**9
    return PlantSimulator(SimulatorConfig(assets=assets, days=hours / 24, seed=seed, start_ns=start))


def dead_letters(kafka: KafkaSettings) -> list[dict[str, Any]]:
    return [json.loads(record.value) for record in read_topics(kafka, [kafka.topics().dead_letter])]


def started_worker(kafka: KafkaSettings, tmp_path: Path, registry: Path, name: str,
                   env: dict[str, str] | None = None) -> WorkerProcess:
    """A worker that owns every partition and waits for input (the live case: it runs before the producer)."""
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + name, registry, name, env=env)
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
    reports = [json.loads(r.value) for r in read_topics(kafka, [kafka.topics().worker_health])]
    assert reports and {"vibration", "camera"} <= set(reports[-1]["event_time_lag_s"])  # for the sink's points


def test_a_worker_with_a_bundle_scores_new_assets_live_after_the_short_warm_up_as_the_embedded_runner(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    """The bundle brings kind priors and a learned fusion gate; the worker fuses with the gate (``fusion =
    "learned"``), each asset's kind from the registry, as the embedded runner does."""
    plant = simulated_plant(14, 3, hours=4)
    registry = tmp_path / "assets.json"
    plant.asset_registry().save(registry)
    rng = np.random.default_rng(0)
    histories = [AssetHistory(kind, {channel: [(minute / 60, float(rng.chisquare(3))) for minute in range(1440)]
                                     for channel in ("vibration", "camera", "early")}) for kind in ("pump", "motor")]
    bundle = write_bundle(tmp_path / "bundle", "live-1", {**fit_priors(histories, 2.0, (2.0, 8.0)).parts(),
                                                          **toy_gate(("motor", "pump")).parts()})
    worker = started_worker(kafka, tmp_path, registry, "bundle", env={"FUSEWATCH_MODELS__BUNDLE": str(bundle.path),
                                                                      "FUSEWATCH_MODELS__FUSION": "learned"})
    try:
        sent = cli(kafka, "simulate", "--kafka", kafka.bootstrap_servers, "--assets", "3", "--days", str(4 / 24),
                   "--seed", "14", "--start", format_time(plant.config.start_ns), "--speed", "max", "--no-progress")
        assert sent.returncode == 0, sent.stderr
        expected = embedded_scores(plant, settings=StreamSettings(models=ModelConfig(bundle=bundle.path,
                                                                                     fusion="learned")))
        wait_until(lambda: len({window_key(s) for s in scores_in_topic(kafka)}) >= len(expected) - 2 * 3,
                   300, "all windows scored", worker)
        wait_until(worker.drained, 60, "every message processed", worker)
    finally:
        assert worker.stop() == 0, worker.tail()
    scores = scores_in_topic(kafka)
    assert_same_scores(expected, scores)
    assert {score["model_version"] for score in scores} == {f"{__version__}+learned.s4.blive-1"}
    alertable = [score for score in scores if not score["warmup"]]  # hours 2 to 4: past the bundle's warm-up
    assert {score["asset_id"] for score in alertable} == set(plant.asset_ids)
    assert min(parse_time(score["window_end"]) for score in alertable) - plant.config.start_ns <= 2.05 * NS_PER_HOUR


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



def test_an_outage_flushed_late_is_scored_within_the_hold_and_dead_lettered_past_it(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    """Asset A's vibration is withheld for 2 plant hours and asset B's for 5 h 30 min, each then flushed at full
    speed while their frames and the other assets flow live (one plant minute every 60 ms). With ``max_hold_s`` =
    3 h, every window of A is scored with its vibration, as in the embedded runner, and nothing else changes; of
    B's snapshots, none within 3 h of its newest event at the flush is late, and those more than 4 h 30 min
    behind are dead letters with reason ``late``. Between the two it depends on how far the worker had got with
    B's frames when the flush came: the merge's ``source_wait_s`` (2 s of the worker's waiting time) is most of
    an hour at this pace."""
    plant = simulated_plant(seed=15, assets=3, hours=6)
    registry = tmp_path / "assets.json"
    plant.asset_registry().save(registry)
    a, b = sorted(plant.asset_registry().assets)[:2]
    outage_a, outage_b = range(60, 180), range(10, 340)  # plant minutes, after each spoke
    worker = started_worker(kafka, tmp_path, registry, "outage")
    held: dict[str, list[Any]] = {a: [], b: []}
    newest: dict[str, int] = {}  # per asset, the newest event time sent
    newest_b_at_flush = 0
    try:
        with EventProducer(kafka) as producer:
            for minute, step in enumerate(plant.steps()):
                for asset, outage in ((a, outage_a), (b, outage_b)):
                    if minute == outage.stop:  # the link is back: the gateway flushes its buffer at full speed
                        newest_b_at_flush = newest[b] if asset == b else newest_b_at_flush
                        for event in held[asset]:
                            producer.send(event)
                        held[asset] = []
                for event in step:
                    outage = outage_a if event.asset_id == a else outage_b if event.asset_id == b else range(0)
                    if isinstance(event, VibrationChunk) and minute in outage:
                        held[event.asset_id].append(event)
                    else:
                        producer.send(event)
                        newest[event.asset_id] = max(newest.get(event.asset_id, 0), event.ts)
                producer.flush()
                time.sleep(0.06)
        expected = embedded_scores(plant)
        wait_until(lambda: len({window_key(s) for s in scores_in_topic(kafka)}) >= len(expected) - 6, 180,
                   "all windows scored", worker)
        wait_until(worker.drained, 60, "every message processed", worker)
    finally:
        assert worker.stop() == 0, worker.tail()

    bound = newest_b_at_flush - 3 * NS_PER_HOUR
    letters = dead_letters(kafka)
    late = [decode(base64.b64decode(letter["raw_base64"])) for letter in letters if letter["error"] == "late"]
    assert len(late) == len(letters), [letter["error"] for letter in letters][:5]
    assert all(isinstance(event, VibrationChunk) and event.asset_id == b and event.ts < bound for event in late)
    withheld_b = [e for minute, step in enumerate(plant.steps()) if minute in outage_b for e in step
                  if e.asset_id == b and isinstance(e, VibrationChunk)]
    must_be_late = {e.ts for e in withheld_b if e.ts < bound - 3 * NS_PER_HOUR // 2}
    assert len(must_be_late) >= 50 and must_be_late <= {e.ts for e in late}
    got = scores_in_topic(kafka)
    assert_same_scores({k: v for k, v in expected.items() if k[0] != b}, [s for s in got if s["asset_id"] != b])
    start = plant.config.start_ns
    by_window = {window_key(s): s for s in got}
    during_a = [s for (asset, end), s in by_window.items() if asset == a
                and start + outage_a.start * 60 * 10**9 < end <= start + outage_a.stop * 60 * 10**9]
    assert len(during_a) >= 115 and all(s["present"]["vibration"] for s in during_a)
    late_windows = {(b, e.ts - e.ts % (60 * 10**9) + 60 * 10**9) for e in late}
    for (asset, end), score in by_window.items():
        if asset == b and start + outage_b.start * 60 * 10**9 < end <= start + outage_b.stop * 60 * 10**9:
            assert score["present"]["vibration"] == ((asset, end) not in late_windows), end


def test_a_topic_hours_ahead_is_paused_within_the_byte_budget_and_nothing_is_late(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six plant hours of vibration wait on the broker when the worker starts; frames and logs come live (one
    plant minute every 40 ms). The worker pauses vibration at ``max_buffered_mb`` = 16 per partition instead of
    buffering the six hours, resumes it as the frames catch up, and scores every window as the embedded runner."""
    plant = simulated_plant(seed=16, assets=3, hours=6)
    registry = tmp_path / "assets.json"
    plant.asset_registry().save(registry)
    steps = list(plant.steps())
    with EventProducer(kafka) as producer:
        for step in steps:
            for event in step:
                if isinstance(event, VibrationChunk):
                    producer.send(event)
    budget = 16 * 2**20
    monkeypatch.setenv("FUSEWATCH_ALIGNER__MAX_BUFFERED_MB", "16")
    stop = threading.Event()

    def live_frames_and_logs() -> None:
        with EventProducer(kafka) as producer:
            for step in steps:
                for event in step:
                    if not isinstance(event, VibrationChunk):
                        producer.send(event)
                producer.flush()
                if stop.wait(0.04):
                    return

    live = threading.Thread(target=live_frames_and_logs, daemon=True)
    live.start()
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + "ahead", registry, "ahead")
    try:
        expected = embedded_scores(plant)
        wait_until(lambda: len({window_key(s) for s in scores_in_topic(kafka)}) >= len(expected) - 6, 240,
                   "all windows scored", worker)
        wait_until(worker.drained, 60, "every message processed", worker)
        health = worker.health()
        assert health is not None
        peak_rss_kb = int(next(line.split()[1] for line in Path(f"/proc/{worker.process.pid}/status").read_text()
                               .splitlines() if line.startswith("VmHWM:")))
    finally:
        stop.set()
        live.join(timeout=60)
        assert worker.stop() == 0, worker.tail()
    print(f"flow control: paused {health['counters'].get('paused', 0)} times, most held per partition "
          f"{max(health['max_held_bytes'].values()) / 2**20:.1f} MB (budget 16 MB), worker peak RSS "
          f"{peak_rss_kb / 1024:.0f} MB")
    assert health["counters"].get("paused", 0) >= 1 and health["counters"].get("resumed", 0) >= 1
    fetch = kafka.max_message_bytes  # what the consumer had fetched for each input of a partition when paused
    assert max(health["max_held_bytes"].values()) <= budget + 3 * fetch
    assert dead_letters(kafka) == []
    assert_same_scores(expected, scores_in_topic(kafka))
