"""`fusewatch worker` on the real broker: the same scores as the embedded runner, through poison, crashes and
a change of owner."""

from __future__ import annotations

import functools
import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from connectors.kafka.consumer import read_topics
from connectors.kafka.producer import EventProducer
from connectors.kafka.simulate import default_start_ns
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import encode
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import format_time
from tests.integration.workers import (
    WorkerProcess,
    assert_same_scores,
    embedded_scores,
    scores_in_topic,
    wait_until,
    window_key,
)

pytestmark = pytest.mark.integration


def plant(assets: int, days: float, sample_rate_hz: float = 25_600.0, start_ns: int | None = None) -> PlantSimulator:
    """A plant of seed 5 that ends now, or starts at ``start_ns`` (recent either way: the broker keeps 7 days)."""
    start = default_start_ns(time.time_ns(), days, None) if start_ns is None else start_ns
    return PlantSimulator(
        SimulatorConfig(assets=assets, days=days, seed=5, start_ns=start, sample_rate_hz=sample_rate_hz)
    )


def publish(kafka: KafkaSettings, simulated: PlantSimulator, tmp_path: Path) -> Path:
    with EventProducer(kafka) as producer:
        for event in simulated.events():
            producer.send(event)
    registry = tmp_path / "assets.json"
    simulated.asset_registry().save(registry)
    return registry


def host(tmp_path: Path, number: int) -> Path:
    """The work directory of a worker on host ``number``: no two workers share one (nor their checkpoints)."""
    directory = tmp_path / f"host-{number}"
    directory.mkdir(exist_ok=True)
    return directory


def scored(kafka: KafkaSettings, count: int) -> bool:
    return len({window_key(score) for score in scores_in_topic(kafka)}) >= count


def cli(kafka: KafkaSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix}
    return subprocess.run([sys.executable, "-m", "fusewatch.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env, check=False)


def test_simulate_then_worker_scores_equal_the_embedded_runner(kafka: KafkaSettings, tmp_path: Path) -> None:
    simulated = plant(assets=2, days=0.25)
    registry = tmp_path / "assets.json"
    start = format_time(simulated.config.start_ns)
    sent = cli(kafka, "simulate", "--kafka", kafka.bootstrap_servers, "--assets", "2", "--days", "0.25",
               "--seed", "5", "--start", start, "--speed", "max", "--assets-file", str(registry), "--no-progress")
    assert sent.returncode == 0, sent.stderr
    expected = embedded_scores(simulated)
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + "eq", registry, "worker")
    try:
        wait_until(lambda: scored(kafka, len(expected) - 4), 180, "all windows scored", worker)
        wait_until(worker.drained, 60, "every message processed", worker)  # the last windows' inputs too
        health = worker.health()
        assert health is not None and health["partitions"] == list(range(kafka.partitions))
    finally:
        assert worker.stop() == 0, worker.tail()
    assert_same_scores(expected, scores_in_topic(kafka))
    tail = cli(kafka, "scores", "tail", "--from-beginning", "--max", "3", "--idle-exit", "20")
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 3 and all(" fused=" in line and " leading=" in line for line in lines)


def poison_messages(good: bytes, frame: bytes) -> list[tuple[bytes, str, str]]:
    """Malformed input of every kind the worker must refuse, made from one good vibration message and one frame:
    (bytes, expected reason, topic suffix)."""
    head_len = struct.unpack_from("<I", good, 4)[0]
    nan = good[: 8 + head_len] + struct.pack("<f", float("nan")) * ((len(good) - 8 - head_len) // 4)
    year = good.index(b'"ts":"') + 6
    future = good[:year] + b"2099" + good[year + 4 :]  # same length: only the event time changes
    frame_head = struct.unpack_from("<I", frame, 4)[0]
    corrupt_image = frame[: 8 + frame_head] + b"\x00" * (len(frame) - 8 - frame_head)
    return [(raw, reason, "vibration") for raw, reason in [
        (b"\x00\x01garbage", "invalid"),
        (b"XX" + good[2:], "invalid"),
        (good[:-7], "invalid"),
        (good + b"\x00\x00\x00\x00", "invalid"),
        (good[:8] + b"\xff" + good[9:], "invalid"),
        (nan, "invalid"),
        (good[:3] + b"\x09" + good[4:], "invalid"),
        (future, "invalid"),
        (good, "unknown asset"),  # published with a key outside the registry
    ]] + [
        (frame[:-100], "invalid", "frames"),  # truncated
        (frame + b"\x00" * 64, "invalid", "frames"),  # oversized
        (corrupt_image, "invalid", "frames"),  # the header is right, the image is not
    ]


def test_poison_goes_to_dead_letters_and_good_output_is_unchanged(kafka: KafkaSettings, tmp_path: Path) -> None:
    simulated = plant(assets=4, days=0.87, sample_rate_hz=4_000.0)  # 10,000+ messages, small snapshots
    events = list(simulated.events())
    rng = random.Random(11)
    poison_at = set(rng.sample(range(len(events)), len(events) // 100))
    topics = kafka.topics()
    template = encode(next(e for e in events if topics.for_event(e) == topics.vibration))
    frame = encode(next(e for e in events if topics.for_event(e) == topics.frames))
    kinds = poison_messages(template, frame)
    sent_poison: list[tuple[int, str, str]] = []
    with EventProducer(kafka) as producer:
        for index, event in enumerate(events):
            if index in poison_at:
                raw, reason, suffix = kinds[len(sent_poison) % len(kinds)]
                key = "pump-99" if reason == "unknown asset" else event.asset_id
                producer.send_raw(topics.prefix + suffix, key, raw, event.ts // 1_000_000)
                sent_poison.append((index, reason, topics.prefix + suffix))
            producer.send(event)
    registry = tmp_path / "assets.json"
    simulated.asset_registry().save(registry)
    total = len(events) + len(sent_poison)
    assert total >= 10_000 and len(sent_poison) == len(events) // 100

    expected = embedded_scores(simulated)  # the good messages alone
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + "poison", registry, "worker")
    try:
        wait_until(lambda: scored(kafka, len(expected) - 8), 300, "all windows scored", worker)
        wait_until(worker.drained, 60, "every message processed", worker)
    finally:
        assert worker.stop() == 0, worker.tail()
    letters = [json.loads(record.value) for record in read_topics(kafka, [kafka.topics().dead_letter])]
    assert len({(d["source_topic"], d["partition"], d["offset"]) for d in letters}) == len(sent_poison)
    assert sorted((d["source_topic"], d["error"].split(":")[0]) for d in letters) == sorted(
        (topic, reason) for _, reason, topic in sent_poison
    )
    assert any("h ahead of the clock" in d["error"] for d in letters)
    for letter in letters:  # frames are personal-data-sensitive: their bytes stay in the source topic only
        assert (letter["raw_base64"] == "") == (letter["source_topic"] == topics.frames)
    assert_same_scores(expected, scores_in_topic(kafka))


def checkpointed(worker: WorkerProcess) -> bool:
    """Whether the worker wrote a checkpoint to the state topic (``False`` while its health endpoint is not up)."""
    count: int = ((worker.health() or {}).get("counters") or {}).get("checkpoints", 0)
    return count >= 1


def test_kill_9_and_restart_loses_no_window_and_repeats_only_exact_duplicates(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    simulated = plant(assets=2, days=0.5)
    registry = publish(kafka, simulated, tmp_path)
    expected = embedded_scores(simulated)
    kills = 0
    for kills in range(1, 4):  # three kill -9 mid-run, each after more windows were scored
        # each worker has a work directory of its own (another host): the state comes from the state topic
        worker = WorkerProcess(kafka, host(tmp_path, kills), kafka.topic_prefix + "crash", registry,
                               f"worker-{kills}")
        target = len({window_key(s) for s in scores_in_topic(kafka)}) + 150
        wait_until(functools.partial(scored, kafka, target), 180, f"{target} windows before kill {kills}", worker)
        # and a checkpoint in the state topic: on a fast machine 150 windows take less than the checkpoint interval
        wait_until(functools.partial(checkpointed, worker), 60, f"a checkpoint before kill {kills}", worker)
        worker.kill()
    restarted = time.monotonic()
    worker = WorkerProcess(kafka, host(tmp_path, 4), kafka.topic_prefix + "crash", registry, "worker-final")
    try:
        caught_up = wait_until(lambda: scored(kafka, len(expected) - 4), 240, "all windows after restarts", worker)
    finally:
        assert worker.stop() == 0, worker.tail()
    # its work directory was new: what it restored came from the state topic (partitions the killed workers had
    # checkpointed; one that was never checkpointed starts from offset 0, which gives the same scores)
    restored = worker.log.read_text().count("restored checkpoint")
    assert restored >= 1, f"nothing restored from the state topic\n{worker.tail()}"
    scores = scores_in_topic(kafka)
    assert_same_scores(expected, scores)  # none lost; a repeated window is identical to its first copy
    distinct = {window_key(s) for s in scores}
    print(f"\ncrash test: {kills} kills; windows expected {len(expected)}, present {len(distinct)},"
          f" duplicated {len(scores) - len(distinct)}; restart to caught up {caught_up:.1f} s"
          f" (wall {time.monotonic() - restarted:.1f} s)")


def test_workers_on_separate_hosts_scale_out_and_take_over_after_a_kill(kafka: KafkaSettings,
                                                                         tmp_path: Path) -> None:
    """One worker runs; a second, on another host (a work directory of its own), joins and the group moves
    partitions to it (restored from the state topic the first wrote on revocation); then the first is killed
    (-9) and the second takes over the rest (restored from the first's periodic checkpoints)."""
    simulated = plant(assets=6, days=0.2)
    registry = publish(kafka, simulated, tmp_path)
    expected = embedded_scores(simulated)
    first = WorkerProcess(kafka, host(tmp_path, 1), kafka.topic_prefix + "scale", registry, "worker-a")
    second: WorkerProcess | None = None
    try:
        wait_until(lambda: scored(kafka, 100), 120, "the first worker's windows", first)
        second = WorkerProcess(kafka, host(tmp_path, 2), kafka.topic_prefix + "scale", registry, "worker-b")
        joined = second

        def split() -> bool:  # both own partitions, and together all (each restores its own from the state topic)
            a, b = first.health(), joined.health()
            return bool(a and b and a["partitions"] and b["partitions"]
                        and sorted(a["partitions"] + b["partitions"]) == list(range(kafka.partitions)))

        wait_until(split, 120, "both workers to own partitions", first)
        wait_until(lambda: scored(kafka, 300), 120, "windows of both workers", second)
        first.kill()
        wait_until(lambda: (joined.health() or {}).get("partitions") == list(range(kafka.partitions)), 120,
                   "the second worker to own every partition", second)
        wait_until(lambda: scored(kafka, len(expected) - 12), 240, "all windows", second)
        counters = (second.health() or {}).get("counters", {})
        print(f"\nscale-out and takeover: stalled inputs resumed by the watchdog: {counters.get('resumed_stalled', 0)}")
    finally:
        if first.process.poll() is None:
            first.stop()
        if second is not None:
            assert second.stop() == 0, second.tail()
    assert "restored checkpoint" in second.log.read_text(), second.tail()
    scores = scores_in_topic(kafka)
    assert_same_scores(expected, scores)
    for asset in {s["asset_id"] for s in scores}:  # per-asset order: first copies come in window order
        seen: list[int] = []
        for score in scores:
            key = window_key(score)
            if key[0] == asset and key[1] not in seen:
                seen.append(key[1])
        assert seen == sorted(seen), asset
    assert np.isfinite([s["fused"] for s in scores]).all()


def test_live_bursts_are_scored_in_batches_equal_to_the_embedded_runner(kafka: KafkaSettings, tmp_path: Path) -> None:
    """The worker runs while the plant sends: every plant minute all 30 assets sample on the same second, so each
    minute's frames close 30 windows at once. The worker scores them in batches (its health counts more than one
    window per batch) and every window equals the embedded runner's."""
    assets = 30
    simulated = plant(assets=assets, days=12 / 1440, sample_rate_hz=4_000.0)
    registry = tmp_path / "assets.json"
    simulated.asset_registry().save(registry)
    expected = embedded_scores(simulated)
    worker = WorkerProcess(kafka, tmp_path, kafka.topic_prefix + "burst", registry, "worker")
    try:
        wait_until(lambda: bool((worker.health() or {}).get("partitions")), 120, "partitions assigned", worker)
        with EventProducer(kafka) as producer:
            for step in simulated.steps():  # live: one plant minute at a time, the worker scoring meanwhile
                for event in step:
                    producer.send(event)
                producer.flush()
                time.sleep(0.3)
        wait_until(lambda: scored(kafka, len(expected) - 2 * assets), 180, "the closed windows scored", worker)
        counters = (worker.health() or {})["counters"]
    finally:
        assert worker.stop() == 0, worker.tail()
    assert counters["batches"] >= 1 and counters["batched_windows"] >= len(expected) - 2 * assets
    assert counters["batched_windows"] / counters["batches"] > 2, counters  # windows closing together, together
    assert_same_scores(expected, scores_in_topic(kafka))
