"""State topic: the bytes a worker's checkpoints put on the worker-state topic, and the time to restore them.

(1) Checkpoint size: a simulated plant is fed through the worker's processor (`PartitionProcessor`, one
partition, in the benchmark process); at each plant age we take its checkpoint and report the bytes per asset
of the pickled state (what a worker holds) and of its zlib level-1 compression (what goes on the topic), split
into aligner (open windows), models and alert state. (2) Rates: a producer thread streams a plant live at a
fixed multiple of plant speed into topics of the benchmark's own, summing the key and value bytes it sends to
the three input topics, while one `fusewatch worker` (a subprocess, default settings) scores it; afterwards
the key and value bytes of every record on the worker-state topic (chunks, headers, tombstones' keys) are
summed, for the records written before the worker was stopped (periodic checkpoints) and with those it writes
on shutdown (SIGTERM). (3) Restore: a plant of 100 assets is sent as fast as possible into topics with one
partition; a worker scores all of it and is stopped gracefully (it checkpoints on the way out); then
`KafkaCheckpointStore.load(0)` is timed in the benchmark process (a new store each time, as a worker on
another host reads it), then the unpickling into a `PartitionProcessor`; a second worker with a new work
directory is started and its log line "checkpoint of B bytes restored from TOPIC in S s" read. As a worker
cannot score days of 100 assets within the benchmark's time, a checkpoint of the size of 100 fully warmed
assets (the pickled state of (1) at its oldest age, repeated) is written to a state topic of its own and its
load timed the same way.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.processes import bench_kafka, stop, worker_command
from benchmarks.recovery import READY, logged_at, restores
from benchmarks.run import method_text, stat
from connectors.kafka.admin import create_topics, delete_topics, topic_names
from connectors.kafka.consumer import read_topics
from connectors.kafka.pacing import Pacer
from connectors.kafka.producer import EventProducer
from connectors.kafka.simulate import default_start_ns
from connectors.kafka.state_store import KafkaCheckpointStore
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.config import FusewatchConfig
from fusewatch.core.codec import encode
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_MS, NS_PER_S
from fusewatch.core.topics import Topics
from streams.checkpoint import Checkpoint
from streams.runners.partition import PartitionProcessor

DAY_NS = 86_400 * NS_PER_S
LOADS = 5


def kib(value: float) -> float:
    """Bytes as KiB, one decimal.

    >>> kib(1536), kib(100)
    (1.5, 0.1)
    """
    return round(value / 1024, 1)


def plant_speed_ratio(pickled: float, compressed: float, input_per_s: float, interval_s: float = 5.0,
                      max_interval_s: float = 300.0) -> float:
    """State-topic bytes per input byte of a partition at a steady input rate under the worker's rule: a checkpoint
    once the input since the last one reaches the pickled state's size, no sooner than ``interval_s`` and no later
    than ``max_interval_s``; each puts ``compressed`` bytes on the topic.

    >>> plant_speed_ratio(1000, 600, 10), plant_speed_ratio(1000, 600, 1), plant_speed_ratio(1000, 600, 1000)
    (0.6, 2.0, 0.12)
    """
    every_s = min(max_interval_s, max(interval_s, pickled / input_per_s))
    return compressed / (every_s * input_per_s)


def mib(value: float) -> float:
    """Bytes as MiB, one decimal.

    >>> mib(3 * 2**20 / 2)
    1.5
    """
    return round(value / 2**20, 1)


def record_bytes(records: Iterator[Any], before_ms: int | None = None) -> tuple[int, int, int]:
    """Key + value bytes, records and checkpoint headers (key ``app/pN/gG`` with a value) among ``records``
    (:class:`~connectors.kafka.consumer.Record`), those with a timestamp below ``before_ms`` when given.

    >>> from types import SimpleNamespace as R
    >>> record_bytes(iter([R(key=b"a/p0/g1/s0/c0", value=b"xyz", timestamp_ms=1), R(key=b"a/p0/g1", value=b"{}",
    ...               timestamp_ms=2), R(key=b"a/p0/g0", value=None, timestamp_ms=3)]), before_ms=3)
    (25, 2, 1)
    """
    total = count = headers = 0
    for record in records:
        if before_ms is not None and record.timestamp_ms >= before_ms:
            continue
        key = record.key or b""
        total += len(key) + len(record.value or b"")
        count += 1
        headers += key.count(b"/") == 2 and record.value is not None
    return total, count, headers


# ---------------------------------------------------------------------------------------------- 1: sizes


def state_sizes(assets: int, ages_days: list[float], log: Callable[[str], None]) -> dict[str, Any]:
    """Feed a plant of ``assets`` through one PartitionProcessor; the checkpoint's bytes at each age."""
    plant = PlantSimulator(SimulatorConfig(assets=assets, days=max(ages_days), seed=0))
    topics = Topics()
    processor = PartitionProcessor(0, FusewatchConfig().streams, topics, "bench", plant.asset_registry(), "")
    offsets: Counter[str] = Counter()
    marks = sorted(ages_days)
    rows: list[dict[str, Any]] = []
    input_bytes = 0
    started = time.perf_counter()
    state = b""

    def measure(age: float) -> None:
        nonlocal state
        taken = time.perf_counter()
        state = processor.checkpoint().state
        pickle_s = time.perf_counter() - taken
        compressed = zlib.compress(state, 1)
        compress_s = time.perf_counter() - taken - pickle_s
        _, snapshot = pickle.loads(state)
        aligner, pipeline, alerts, _ = pickle.loads(snapshot)
        part = {name: len(pickle.dumps(obj, protocol=5)) / assets
                for name, obj in (("aligner", aligner), ("models", pipeline), ("alerts", alerts))}
        rows.append({"age_days": age, "windows": processor.processed, "bytes_per_asset": len(state) / assets,
                     "compressed_per_asset": len(compressed) / assets, "parts_per_asset": part,
                     "pickle_s": pickle_s, "compress_s": compress_s,
                     "input_bytes_per_asset_s": input_bytes / assets / (age * DAY_NS / NS_PER_S),
                     "elapsed_s": time.perf_counter() - started})
        log(f"[state_topic] {assets} assets at {age:g} d: {kib(len(state) / assets)} KiB/asset pickled,"
            f" {kib(len(compressed) / assets)} KiB compressed ({time.perf_counter() - started:.0f} s)")

    for step in plant.steps():
        if marks and step and step[0].ts - plant.config.start_ns >= marks[0] * DAY_NS:
            measure(marks.pop(0))
        for event in step:
            topic, raw = topics.for_event(event), encode(event)
            key = event.asset_id.encode()
            input_bytes += len(raw) + len(key)
            processor.handle(topic, offsets[topic], event.ts // NS_PER_MS, raw, key)
            offsets[topic] += 1
    for age in marks:  # the plant's end
        measure(age)
    return {"assets": assets, "ages": rows, "oldest_state": state, "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------- a live plant


class Feed(threading.Thread):
    """Sends a plant's events (paced at ``speed``, or as fast as possible with ``None``) and counts the key and
    value bytes sent."""

    def __init__(self, settings: KafkaSettings, plant: PlantSimulator, speed: float | None) -> None:
        super().__init__(name="state-topic-feed", daemon=True)
        self.settings, self.plant, self.speed = settings, plant, speed
        self.bytes = self.messages = 0
        self.newest_ns = 0
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            def pause(seconds: float) -> None:  # a sleep that a halt ends early
                self.halt.wait(seconds)

            pacer = Pacer(self.speed, self.plant.config.start_ns, sleep=pause)
            topics = self.settings.topics()
            with EventProducer(self.settings) as producer:
                for step in self.plant.steps():
                    for event in step:
                        pacer.wait_until(event.ts)
                        if self.halt.is_set():
                            return
                        raw, key = encode(event), event.asset_id
                        producer.send_raw(topics.for_event(event), key, raw, event.ts // NS_PER_MS)
                        self.bytes += len(raw) + len(key.encode())
                        self.messages += 1
                        self.newest_ns = max(self.newest_ns, event.ts)
        except BaseException as exc:  # reported by the benchmark
            self.error = exc


def start_worker(settings: KafkaSettings, workdir: Path, app_id: str, registry: Path,
                 name: str) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": settings.topic_prefix, "PYTHONUNBUFFERED": "1",
           "FUSEWATCH_KAFKA__PARTITIONS": str(settings.partitions)}
    with open(workdir.parent / f"{name}.log", "wb") as output:
        return subprocess.Popen(worker_command(settings, workdir, app_id, registry, "INFO"), env=env,
                                stdout=output, stderr=subprocess.STDOUT)


def live_rates(assets: int, speed: float, seconds: float, directory: Path,
               log: Callable[[str], None]) -> dict[str, Any]:
    """Stream a plant live for ``seconds`` while a worker scores it; input and state-topic bytes."""
    settings = bench_kafka(topic_prefix=f"fwbench-state-{uuid.uuid4().hex[:8]}.")
    days = speed * seconds * 1.5 / 86_400
    plant = PlantSimulator(SimulatorConfig(assets=assets, days=days, seed=0,
                                           start_ns=default_start_ns(time.time_ns(), days, speed)))
    plant.asset_registry().save(directory / "assets.json")
    create_topics(settings, topic_names(settings))
    feed = Feed(settings, plant, speed)
    worker: subprocess.Popen[bytes] | None = None
    try:
        feed.start()
        started = time.monotonic()
        worker = start_worker(settings, directory / "live", f"{settings.topic_prefix}live", directory / "assets.json",
                              "live")
        while time.monotonic() - started < seconds:
            if feed.error is not None or worker.poll() is not None:
                raise RuntimeError(f"feed error {feed.error} / worker exit {worker.poll()}; see {directory}/live.log")
            time.sleep(0.5)
        stopped_ms = round(time.time() * 1000)
        feed.halt.set()
        feed.join(timeout=60)
        wall_s = time.monotonic() - started
        stop(worker)
        periodic = record_bytes(read_topics(settings, [settings.topics().worker_state]), before_ms=stopped_ms)
        total = record_bytes(read_topics(settings, [settings.topics().worker_state]))
    finally:
        feed.halt.set()
        stop(worker)
        delete_topics(settings, topic_names(settings))
    result = {"assets": assets, "speed": speed, "wall_s": wall_s, "partitions": settings.partitions,
              "plant_hours": (feed.newest_ns - plant.config.start_ns) / NS_PER_S / 3600,
              "input_bytes": feed.bytes, "input_messages": feed.messages,
              "state_bytes": periodic[0], "state_records": periodic[1], "checkpoints": periodic[2],
              "state_bytes_with_shutdown": total[0], "checkpoints_with_shutdown": total[2]}
    log(f"[state_topic] live: {result}")
    return result


# ---------------------------------------------------------------------------------------------- 3: restore


def time_loads(settings: KafkaSettings, app_id: str, processor: Callable[[], PartitionProcessor] | None,
               ) -> dict[str, Any]:
    """``LOADS`` loads of partition 0 by new stores; seconds, bytes, bytes read, and the unpickling seconds."""
    found: list[Any] = []  # the arguments of the store's "restored" log lines: partition, bytes, topic, s, read

    def keep(record: logging.LogRecord) -> bool:
        found.extend([record.args] if "restored from" in str(record.msg) else [])
        return True

    logger = logging.getLogger("connectors.kafka.state_store")
    logger.addFilter(keep)
    logger.setLevel(logging.INFO)
    seconds: list[float] = []
    unpickle: list[float] = []
    size = compressed = 0
    try:
        for _ in range(LOADS):
            store = KafkaCheckpointStore(settings, app_id, "bench-reader")
            started = time.perf_counter()
            checkpoint: Checkpoint | None = store.load(0)
            seconds.append(time.perf_counter() - started)
            store.close()
            if checkpoint is None:
                raise RuntimeError(f"no checkpoint of partition 0 for {app_id} in {store.topic}")
            size = len(checkpoint.state)
            compressed = compressed or len(zlib.compress(checkpoint.state, 1))
            if processor is not None and len(unpickle) < 2:
                target = processor()
                target.config_digest = checkpoint.config_digest  # the worker's (its environment differs)
                started = time.perf_counter()
                target.restore(checkpoint)
                unpickle.append(time.perf_counter() - started)
            del checkpoint
    finally:
        logger.removeFilter(keep)
    return {"seconds": stat(seconds, 2), "state_bytes": size, "compressed_bytes": compressed,
            "read_bytes": int(found[-1][4]) if found else None,
            "unpickle_s": stat(unpickle, 2) if unpickle else None}


def wait_drained(worker: subprocess.Popen[bytes], log_path: Path, feed: Feed, timeout_s: float) -> None:
    """Until the feed is done and the worker has processed every message sent (its `progress` log lines)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None or feed.error is not None:
            raise RuntimeError(f"worker exit {worker.poll()} / feed error {feed.error}; see {log_path}")
        if not feed.is_alive():
            progress = re.findall(r"progress .* processed=(\d+) .* lag=(\d+)", log_path.read_text(errors="replace"))
            if progress and int(progress[-1][0]) >= feed.messages and progress[-1][1] == "0":
                return
        time.sleep(1.0)
    raise RuntimeError(f"the worker did not finish the plant within {timeout_s:g} s; see {log_path}")


def restore_times(assets: int, hours: float, full: bytes, full_assets: int, directory: Path,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """A real checkpoint of ``assets`` (``hours`` of plant) written by a worker, and one of the size of a fully
    warmed state (``full``: the pickled state of ``full_assets``, repeated), loaded ``LOADS`` times each."""
    settings = bench_kafka(partitions=1, topic_prefix=f"fwbench-restore-{uuid.uuid4().hex[:8]}.")
    plant = PlantSimulator(SimulatorConfig(assets=assets, days=hours / 24, seed=0,
                                           start_ns=default_start_ns(time.time_ns(), hours / 24, None)))
    registry = plant.asset_registry()
    registry.save(directory / "assets.json")
    create_topics(settings, topic_names(settings))
    app_id = f"{settings.topic_prefix}restore"
    feed = Feed(settings, plant, None)
    worker: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {"assets": assets, "plant_hours": hours}
    try:
        feed.start()
        started = time.monotonic()
        worker = start_worker(settings, directory / "first", app_id, directory / "assets.json", "first")
        wait_drained(worker, directory / "first.log", feed, 900.0)
        result["scoring_s"] = time.monotonic() - started
        stopping = time.monotonic()
        stop(worker, timeout_s=180)
        result["shutdown_s"] = time.monotonic() - stopping
        config = FusewatchConfig().streams

        def processor() -> PartitionProcessor:
            return PartitionProcessor(0, config, settings.topics(), "live", registry, "")

        result["topic"] = time_loads(settings, app_id, processor)
        log(f"[state_topic] restore of {assets} assets ({hours:g} h): {result['topic']}")
        restart = time.time()
        worker = start_worker(settings, directory / "second", app_id, directory / "assets.json", "second")
        while (ready := logged_at((directory / "second.log").read_text(errors="replace"), READY)) is None:
            if worker.poll() is not None or time.time() - restart > 300:
                raise RuntimeError(f"the second worker did not get its partition; see {directory}/second.log")
            time.sleep(0.5)
        lines = restores((directory / "second.log").read_text(errors="replace"))
        result["second_worker"] = {"restore_s": lines[0][2] if lines else None,
                                   "restored_bytes": lines[0][1] if lines else None,
                                   "read_bytes": lines[0][3] if lines else None, "ready_s": ready - restart}
        log(f"[state_topic] second worker: {result['second_worker']}")
    finally:
        feed.halt.set()
        stop(worker)
        delete_topics(settings, topic_names(settings))
    synthetic = bench_kafka(partitions=1, topic_prefix=f"fwbench-restore-{uuid.uuid4().hex[:8]}.")
    create_topics(synthetic, [synthetic.topics().worker_state])
    try:
        copies = -(-assets // full_assets)
        state = full * copies
        store = KafkaCheckpointStore(synthetic, app_id, "bench-writer")
        saving = time.perf_counter()
        store.save(Checkpoint(0, {}, "", state))
        store.close()
        result["full_age"] = {"assets": copies * full_assets, "save_s": time.perf_counter() - saving,
                              **time_loads(synthetic, app_id, None)}
        log(f"[state_topic] full-age checkpoint: {result['full_age']}")
    finally:
        delete_topics(synthetic, [synthetic.topics().worker_state])
    return result


# ---------------------------------------------------------------------------------------------- the benchmark


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    size_assets, ages = (2, [0.05, 0.1]) if quick else (6, [0.5, 1.0, 2.0, 3.0])
    live_assets, speed, live_s = (4, 30.0, 40.0) if quick else (12, 60.0, 180.0)
    restore_assets, restore_hours = (10, 0.5) if quick else (100, 4.0)
    sizes = state_sizes(size_assets, ages, log)
    with tempfile.TemporaryDirectory(prefix="fwbench-state-") as directory:
        live = live_rates(live_assets, speed, live_s, Path(directory), log)
    with tempfile.TemporaryDirectory(prefix="fwbench-restore-") as directory:
        restore = restore_times(restore_assets, restore_hours, sizes.pop("oldest_state"), size_assets,
                                Path(directory), log)
    oldest = sizes["ages"][-1]
    input_rate, state_rate = live["input_bytes"] / live["wall_s"], live["state_bytes"] / live["wall_s"]
    ratio = live["state_bytes"] / live["input_bytes"]
    # a partition of full-age assets at plant speed: checkpointed every checkpoint_max_interval_s (300 s)
    # a partition of warmed assets at plant speed (1x), from the sizes: the ratio does not depend on their number
    plant_ratios = {row["age_days"]: plant_speed_ratio(row["bytes_per_asset"], row["compressed_per_asset"],
                                                       row["input_bytes_per_asset_s"]) for row in sizes["ages"]}
    plant_ratio = plant_ratios[oldest["age_days"]]
    topic, second, full = restore["topic"], restore["second_worker"], restore["full_age"]
    size_rows = [[f"{row['age_days']:g}", row["windows"] // size_assets, kib(row["bytes_per_asset"]),
                  kib(row["compressed_per_asset"]), kib(row["parts_per_asset"]["aligner"]),
                  kib(row["parts_per_asset"]["models"]), kib(row["parts_per_asset"]["alerts"]),
                  round(row["pickle_s"] * 1000 / size_assets, 1)] for row in sizes["ages"]]
    restore_rows = [[f"worker's checkpoint, {restore_assets} assets x {restore_hours:g} plant-h",
                     *(mib(topic[key] or 0) for key in ("state_bytes", "compressed_bytes", "read_bytes")),
                     topic["seconds"], topic["unpickle_s"], second["restore_s"], round(second["ready_s"], 1)],
                    [f"full-age size ({full['assets']} x the {oldest['age_days']:g}-day state per asset, synthetic)",
                     *(mib(full[key] or 0) for key in ("state_bytes", "compressed_bytes", "read_bytes")),
                     full["seconds"], "–", "–", "–"]]
    peak = max(sizes["ages"], key=lambda row: row["bytes_per_asset"])
    aligner = [kib(row["parts_per_asset"]["aligner"]) for row in sizes["ages"]]
    median_load = float(topic["seconds"]["median"])
    return {
        "title": "State topic: checkpoint bytes, state-topic traffic and restore time",
        "method": method_text(__doc__),
        "goal": {"text": "the worker-state topic carries fewer bytes than the inputs (state/input < 1) at the default"
                         " settings",
                 "met": ratio < 1,
                 "value": f"{ratio:.3f} ({kib(state_rate)} KiB/s of state for {kib(input_rate)} KiB/s of input,"
                          f" {live_assets} assets at {speed:g}x); restoring {restore_assets} assets from the topic"
                          f" {median_load:.2f} s (median of {LOADS})"},
        "parameters": {"sizes": f"{size_assets} assets, seed 0, one PartitionProcessor, ages {ages} days",
                       "live": f"{live_assets} assets over {live['partitions']} partitions, {speed:g}x plant speed,"
                               f" {live['wall_s']:.0f} s ({live['plant_hours']:.1f} plant-h)",
                       "restore": f"{restore_assets} assets, {restore_hours:g} plant-h sent as fast as possible, 1"
                                  f" partition; {LOADS} loads",
                       "checkpoint_interval_s": 5.0, "checkpoint_max_interval_s": 300.0, "zlib_level": 1},
        "tables": [
            {"caption": "Checkpoint bytes per asset by plant age (KiB; the models warm up over 2880 windows = 2 days)",
             "columns": ["age (days)", "messages/asset", "pickled", "compressed (on the topic)", "aligner",
                         "models", "alerts", "pickling ms/asset"], "rows": size_rows},
            {"caption": f"State topic against inputs, {live_assets} assets live at {speed:g}x plant speed",
             "columns": ["", "input", "state topic (periodic)", "state topic (with shutdown checkpoints)"],
             "rows": [["KiB/s", kib(input_rate), kib(state_rate), kib(live["state_bytes_with_shutdown"]
                                                                       / live["wall_s"])],
                      ["ratio to input", 1, round(ratio, 3), round(live["state_bytes_with_shutdown"]
                                                                   / live["input_bytes"], 3)],
                      ["checkpoints", "–", live["checkpoints"], live["checkpoints_with_shutdown"]]]},
            {"caption": f"Restoring a partition of {restore_assets} assets (seconds: median (min–max) of {LOADS})",
             "columns": ["checkpoint", "state MiB", "compressed MiB", "MiB read", "load (s)", "unpickle (s)",
                         "worker's log: restored in (s)", "worker ready after start (s)"],
             "rows": restore_rows}],
        "figures": {"sizes": sizes, "live": live, "restore": restore, "plant_speed_ratios": plant_ratios},
        "notes": [
            f"Measuring the sizes took {sizes['seconds']:.0f} s; the plant sends"
            f" {oldest['input_bytes_per_asset_s']:.0f} bytes of input per asset and plant second (nearly all"
            " vibration snapshots). Messages per asset count vibration, frames and logs (none while an asset is"
            " down for maintenance).",
            f"The state per asset is largest at {peak['age_days']:g} days ({kib(peak['bytes_per_asset'])} KiB"
            f" pickled, {kib(peak['compressed_per_asset'])} KiB compressed), when the warm-up buffers are full, and"
            f" {kib(oldest['bytes_per_asset'])} / {kib(oldest['compressed_per_asset'])} KiB at"
            f" {oldest['age_days']:g} days; the aligner's open windows are {min(aligner)}–{max(aligner)} KiB per"
            " asset at every age, the rest is the models (alert state: well under 1 KiB).",
            f"The restored checkpoint was {restore_hours:g} plant hours old (the worker scored it in"
            f" {restore['scoring_s']:.0f} s and shut down in {restore['shutdown_s']:.1f} s); its models were in"
            " warm-up. A load reads every record of the partition since the last compaction, superseded chunks"
            " and tombstones included (the state topic rolls a segment every 10 minutes, and only rolled segments"
            " are compacted), hence more MiB read than the checkpoint's compressed size right after the worker"
            " checkpointed many times. The worker's own restore adds the unpickling, timed above, before its"
            " partition is ready.",
            f"At plant speed (1x), a partition's input in checkpoint_max_interval_s (300 s) is"
            f" {kib(oldest['input_bytes_per_asset_s'] * 300)} KiB per asset, "
            + ("less" if oldest["input_bytes_per_asset_s"] * 300 < oldest["bytes_per_asset"] else "more")
            + f" than a {oldest['age_days']:g}-day state ({kib(oldest['bytes_per_asset'])} KiB pickled): by the"
            " worker's rule (a checkpoint once the input since the last one reaches the state's size, at least"
            " every 300 s) the state topic would then carry "
            + ", ".join(f"{ratio:.2f} x the input at {age:g} days" for age, ratio in plant_ratios.items())
            + " (computed from the sizes, not measured live)"
            + (": above 1, the 300 s bound wins over the bytes rule." if plant_ratio > 1 else ".")],
    }
