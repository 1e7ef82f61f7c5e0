"""Ingest: the worker's decode throughput on the vibration topic against a bare aiokafka consumer.

A vibration-only data set (the simulated plant's vibration chunks, about 100 KB each, encoded with the wire codec)
is published once to a vibration topic of the benchmark's own (a fresh prefix, the configured 6 partitions) before
anything is timed. Each condition is a fresh subprocess (`benchmarks/ingest_worker.py`) that reads every message of
the topic from the beginning and reports the time from its first message to its last, so interpreter start-up,
connecting and the group join are left out. "aiokafka" is a bare ``AIOKafkaConsumer`` with the partitions assigned
and the worker's fetch settings (``max_partition_fetch_bytes`` = the largest message, faust's 1.5 s fetch wait),
touching only the length of each value; "aiokafka + decode" adds the worker's decode (`fusewatch.core.codec.decode`:
split the envelope, validate the header, the samples as numpy) in the same loop; "worker ingest" is a faust app with
the worker's settings (`streams.runners.worker_options.faust_app_settings`) and a fresh consumer group, whose agent
iterates the worker's three input topics with ``stream.noack().events()`` like the worker and decodes every message
(acknowledging them in batches of the worker's checkpoint size), without the merge and the scoring. The ratio is
worker ingest messages/s ÷ aiokafka messages/s of the same repetition; the conditions are interleaved in rotating
order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.ingest_worker import REPORT
from benchmarks.processes import bench_kafka
from benchmarks.run import ROOT, method_text, stat
from connectors.kafka.admin import create_topics, delete_topics
from connectors.kafka.producer import EventProducer
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.events import VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings

GOAL = 0.8
# From a py-spy profile of the "worker ingest" subprocess (``py-spy record -t --idle``, start-up excluded).
PROFILE_NOTES = [
    "Profile of the worker ingest process: faust runs the aiokafka consumer in a thread of its own (its"
    " ThreadDelegateConsumer) that does the same fetching and record parsing as the bare consumer (socket reads,"
    " StreamReader.readexactly/feed_data, PartitionRecords._unpack_records, protocol Bytes.decode); the agent's"
    " thread adds faust's per-message stream machinery (Consumer._drain_messages, Stream.events, sensors, queue"
    " hand-offs) and the decode. Both threads share one GIL, so their costs add up instead of overlapping.",
    "Within the agent's thread the decode (mostly pydantic validation: VibrationChunk._check_samples'"
    " np.isfinite(...).all() and make_event) was about a quarter of the busy samples; decode measured alone is"
    " ~20 µs per 100 KB chunk, yet the same agent without the decode read 10–25% faster, so the decode costs"
    " more inside the two-threaded process than in a single loop (GIL hand-offs around numpy calls that release"
    " the GIL are the likely cause).",
    "Tried and left out: removing faust's Monitor sensor (per-message counters and timings) from the app's"
    " sensors; three interleaved pairs read 2449, 2483, 2476 messages/s without it against 2340, 2223, 2603 with"
    " it, within the noise, so the worker keeps faust's monitoring.",
    "2026-12-07: faust's Stream.take_events(500, within=0.05) instead of events() in this reader, on the 5,761"
    " messages of the kafka_path plant: 2.8-4.0 s against 2.7-3.2 s (two runs each); take_events also acknowledges"
    " every event itself after each batch, which the worker cannot allow (see kafka_path).",
]
CONDITIONS = {"aiokafka": "aiokafka", "aiokafka + decode": "aiokafka-decode", "worker ingest": "faust"}


def rotated(items: Sequence[str], repetition: int) -> list[str]:
    """The conditions in the order of one repetition: rotated by one each time, so none always runs first.

    >>> rotated(["a", "b", "c"], 0), rotated(["a", "b", "c"], 1), rotated(["a", "b", "c"], 4)
    (['a', 'b', 'c'], ['b', 'c', 'a'], ['b', 'c', 'a'])
    """
    shift = repetition % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


def rates(report: dict[str, Any]) -> tuple[float, float]:
    """Messages/s and MB/s of a reader's report, counted between its first message and its last: the first
    message opens the clock, so ``messages - 1`` messages were read in ``seconds``.

    >>> rates({"messages": 101, "bytes": 101_000_000, "seconds": 2.0})
    (50.0, 50.0)
    """
    seconds = max(float(report["seconds"]), 1e-9)
    read = max(int(report["messages"]) - 1, 0)
    size = int(report["bytes"]) * read / max(int(report["messages"]), 1)
    return read / seconds, size / 1e6 / seconds


def publish(settings: KafkaSettings, assets: int, minutes: int) -> tuple[int, int]:
    """Publish the vibration chunks of a simulated plant to the vibration topic; (messages, bytes)."""
    now_minute = time.time_ns() // 60_000_000_000 * 60_000_000_000
    simulated = PlantSimulator(SimulatorConfig(assets=assets, days=minutes / 1440, seed=0,
                                               start_ns=now_minute - minutes * 60_000_000_000))
    with EventProducer(settings) as producer:
        for event in simulated.events():
            if isinstance(event, VibrationChunk):
                producer.send(event)
    return sum(producer.sent.values()), producer.bytes_sent


def read_once(settings: KafkaSettings, mode: str, count: int, workdir: Path, app_id: str,
              timeout_s: float = 300.0) -> dict[str, Any]:
    """Run one reader subprocess until it has read ``count`` messages; its report (see ``ingest_worker``)."""
    command = [sys.executable, "-m", "benchmarks.ingest_worker", "--mode", mode, "--topic-prefix",
               settings.topic_prefix, "--kafka", settings.bootstrap_servers, "--count", str(count), "--app-id",
               app_id, "--workdir", str(workdir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(workdir / f"{mode}.log", "wb") as errors:
        reader = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors)
        try:
            output, _ = reader.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            reader.kill()
            reader.communicate()
            raise RuntimeError(f"{mode}: no report within {timeout_s:g} s; see {workdir / f'{mode}.log'}") from None
    lines = [line.removeprefix(REPORT) for line in output.decode().splitlines() if line.startswith(REPORT)]
    if reader.returncode != 0 or not lines:
        raise RuntimeError(f"{mode}: exit status {reader.returncode}, no report; see {workdir / f'{mode}.log'}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    assets, minutes, repetitions = (10, 30, 1) if quick else (60, 120, 3)
    settings = bench_kafka(topic_prefix=f"fwbench-{uuid.uuid4().hex[:8]}.")
    topics = settings.topics()
    create_topics(settings, list(topics.inputs))
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in CONDITIONS}
    startup: dict[str, list[float]] = {name: [] for name in CONDITIONS}
    try:
        started = time.perf_counter()
        messages, size = publish(settings, assets, minutes)
        log(f"[ingest] published {messages} vibration messages ({size / 1e6:.0f} MB) to {topics.vibration}"
            f" in {time.perf_counter() - started:.0f} s")
        with tempfile.TemporaryDirectory() as directory:
            workdir = Path(directory)
            for repetition in range(repetitions):
                for name in rotated(list(CONDITIONS), repetition):
                    report = read_once(settings, CONDITIONS[name], messages, workdir,
                                       f"{settings.topic_prefix}ingest-{repetition}")
                    if report["messages"] != messages:
                        raise RuntimeError(f"{name}: read {report['messages']} of {messages} messages")
                    measured[name].append(rates(report))
                    startup[name].append(float(report["startup_s"]))
                    log(f"[ingest] repetition {repetition + 1} {name}: {measured[name][-1][0]:.0f} msg/s,"
                        f" {measured[name][-1][1]:.0f} MB/s")
    finally:
        delete_topics(settings, list(topics.inputs))
    per_second = {name: [m for m, _ in values] for name, values in measured.items()}
    ratio = stat((w / a for w, a in zip(per_second["worker ingest"], per_second["aiokafka"], strict=True)), 3)
    decode_ratio = stat((d / a for d, a in zip(per_second["aiokafka + decode"], per_second["aiokafka"],
                                                 strict=True)), 3)
    headline = ratio["median"]
    return {
        "title": "Ingest: the worker's decode throughput against a bare aiokafka consumer",
        "method": method_text(__doc__),
        "goal": {"text": f"worker ingest messages/s ≥ {GOAL:g} × a bare aiokafka consumer's on the vibration topic",
                 "met": headline >= GOAL,
                 "value": f"worker ingest / aiokafka = {headline:.3f} (per repetition {ratio['min']:.3f}–"
                          f"{ratio['max']:.3f})"},
        "parameters": {"data": f"{messages} vibration chunks of {assets} assets x {minutes} min, seed 0,"
                               f" {size / 1e6:.0f} MB", "partitions": settings.partitions,
                       "repetitions": repetitions, "max_partition_fetch_bytes": settings.max_message_bytes},
        "tables": [{"caption": "Reading the vibration topic from the first message to the last (median (min–max))",
                    "columns": ["reader", "messages/s", "MB/s", "÷ aiokafka", "start-up to first message (s)"],
                    "rows": [[name, stat(per_second[name], 0), stat((mb for _, mb in measured[name]), 0),
                              stat((v / a for v, a in zip(per_second[name], per_second["aiokafka"], strict=True)),
                                   3),
                              stat(startup[name], 2)] for name in CONDITIONS]}],
        "figures": {"messages": messages, "bytes": size,
                    "messages_per_s": {name: stat(per_second[name], 1) for name in CONDITIONS},
                    "mb_per_s": {name: stat((mb for _, mb in measured[name]), 1) for name in CONDITIONS},
                    "startup_s": {name: stat(startup[name], 2) for name in CONDITIONS},
                    "ratio": ratio, "decode_ratio": decode_ratio},
        "notes": [
            f"Decoding in the consumer's own loop costs {1 - decode_ratio['median']:.0%} of the bare consumer's"
            " rate; the worker's faust pipeline costs the rest of the gap.",
            *PROFILE_NOTES,
        ],
    }
