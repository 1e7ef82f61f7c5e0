"""Flow control: a worker's memory when one input topic is hours of plant time ahead of the others.

Six plant hours of vibration snapshots of a plant (12 assets over 6 partitions) wait on the broker, in topics
of the benchmark's own, when one `fusewatch worker` (a subprocess) starts; the frames and maintenance logs of
the same hours are produced live meanwhile by a thread, one plant minute every 0.1 s of wall time. The
worker's merge holds vibration until the frames of the same minutes arrive; with ``[aligner] max_buffered_mb``
it pauses the vibration partitions instead of reading the whole backlog. We sample the worker's resident memory
(``VmRSS`` of ``/proc/PID/status``) and its health endpoint every 0.5 s until every window is scored, and
report per budget: peak RSS, the most bytes a partition's merge held, pauses, dead letters and the wall time.
A third run produces all three streams live (no skew): the baseline the worker's memory is compared with.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.processes import bench_kafka, stop, worker_command
from benchmarks.run import method_text
from connectors.kafka.admin import create_topics, delete_topics, topic_names
from connectors.kafka.consumer import read_topics
from connectors.kafka.producer import EventProducer
from connectors.kafka.simulate import default_start_ns
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.events import VibrationChunk
from fusewatch.core.kafka_settings import KafkaSettings

BUDGETS_MB = (16.0, 4096.0)  # the second: no pause in practice (the unbounded merge of before)
CONDITIONS = (("vibration 6 h ahead", 16.0, True), ("vibration 6 h ahead", 4096.0, True),
              ("no skew (baseline)", 16.0, False))
MINUTE_S = 0.1


def peak_rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB, from ``/proc/PID/status``; (0, 0) once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return 0, 0
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/fusewatch/health/", timeout=2) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except OSError:
        return None


def one_run(base: KafkaSettings, plant: PlantSimulator, budget_mb: float, backlog: bool, workdir: Path,
            log: Callable[[str], None]) -> dict[str, Any]:
    """Backlog the vibration (or not: the baseline), start the worker and the live producer, sample until every
    window is scored."""
    settings = base.model_copy(update={"topic_prefix": f"fwbench-flow-{uuid.uuid4().hex[:8]}."})
    create_topics(settings)
    try:
        steps = list(plant.steps())
        def ahead(event: object) -> bool:
            return backlog and isinstance(event, VibrationChunk)

        with EventProducer(settings) as producer:
            for step in steps:
                for event in step:
                    if ahead(event):
                        producer.send(event)
        windows = sum(1 for step in steps for event in step if isinstance(event, VibrationChunk))
        registry = workdir / "assets.json"
        plant.asset_registry().save(registry)
        stop_live = threading.Event()

        def live() -> None:
            with EventProducer(settings) as producer:
                for step in steps:
                    for event in step:
                        if not ahead(event):
                            producer.send(event)
                    producer.flush()
                    if stop_live.wait(MINUTE_S):
                        return

        port = 6100 + os.getpid() % 500
        env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": settings.topic_prefix,
               "FUSEWATCH_ALIGNER__MAX_BUFFERED_MB": str(budget_mb)}
        command = [*worker_command(settings, workdir, settings.topic_prefix + "w", registry, "INFO"),
                   "--web-port", str(port)]
        producer_thread = threading.Thread(target=live, daemon=True)
        producer_thread.start()
        started = time.monotonic()
        with open(workdir / "worker.log", "ab") as out:
            worker = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak_held = peak_rss = 0
        last: dict[str, Any] = {}
        scores = 0
        try:
            while time.monotonic() - started < 600:
                time.sleep(0.5)
                rss, hwm = peak_rss_kb(worker.pid)
                peak_rss = max(peak_rss, hwm, rss)
                last = health(port) or last
                peak_held = max([peak_held, *last.get("max_held_bytes", {}).values()])
                if not producer_thread.is_alive():
                    scores = len({(score["asset_id"], score["window_end"]) for score in
                                  (json.loads(r.value) for r in read_topics(settings, [settings.topics().scores]))})
                    if scores >= windows - 2 * plant.config.assets and not any(last.get("held", {}).values()):
                        break
        finally:
            stop_live.set()
            producer_thread.join(timeout=30)
            stop(worker)
        letters = sum(1 for _ in read_topics(settings, [settings.topics().dead_letter]))
        counters = last.get("counters", {})
        result = {"budget_mb": budget_mb, "backlog": backlog, "peak_rss_mb": round(peak_rss / 1024), "merge_peak_mb":
                  round(peak_held / 2**20, 1), "paused": counters.get("paused", 0), "dead_letters": letters,
                  "windows": windows, "scores": scores, "wall_s": round(time.monotonic() - started, 1)}
        log(f"flow control: {result}")
        return result
    finally:
        delete_topics(settings, topic_names(settings))


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    assets, hours = (4, 2.0) if quick else (12, 6.0)
    base = bench_kafka()
    start = default_start_ns(time.time_ns(), hours / 24, None)
    rows, figures = [], []
    for condition, budget, backlog in CONDITIONS:
        plant = PlantSimulator(SimulatorConfig(assets=assets, days=hours / 24, seed=17, start_ns=start))
        with tempfile.TemporaryDirectory(prefix="fwbench-flow-") as workdir:
            result = one_run(base, plant, budget, backlog, Path(workdir), log)
        figures.append(result)
        rows.append([condition, f"{budget:g}", result["merge_peak_mb"], result["paused"], result["peak_rss_mb"],
                     result["dead_letters"], f"{result['scores']} / {result['windows']}", result["wall_s"]])
    bounded, unbounded, baseline = figures
    overshoot_mb = 3 * base.max_message_bytes / 2**20  # one fetch per input partition
    bound_mb = baseline["peak_rss_mb"] + base.partitions * (BUDGETS_MB[0] + overshoot_mb)
    met = (bounded["dead_letters"] == 0 and bounded["merge_peak_mb"] <= BUDGETS_MB[0] + overshoot_mb
           and bounded["peak_rss_mb"] <= bound_mb)
    return {
        "title": "Flow control: one input topic hours ahead",
        "method": method_text(__doc__),
        "goal": {"text": f"with max_buffered_mb = {BUDGETS_MB[0]:g}, a partition's merge holds at most the budget"
                         " plus one fetch per input, no message is late, and the worker's peak RSS stays under the"
                         " baseline's plus partitions x (budget + 3 fetches)",
                 "met": met, "value": f"{bounded['merge_peak_mb']} MB held at most, {bounded['dead_letters']}"
                                      f" dead letters, peak RSS {bounded['peak_rss_mb']} MB (bound {bound_mb:.0f} MB)"},
        "parameters": {"assets": assets, "plant_hours_ahead": hours, "partitions": base.partitions,
                       "live_minute_s": MINUTE_S, "budgets_mb": list(BUDGETS_MB)},
        "tables": [{"caption": "per budget (max_buffered_mb)",
                    "columns": ["condition", "budget MB", "merge peak MB (a partition)", "pauses", "worker peak RSS MB",
                                "dead letters", "windows scored", "wall s"], "rows": rows}],
        "figures": {"runs": figures, "rss_bound_mb": round(bound_mb)},
        "notes": [f"unbounded, the merges held up to {unbounded['merge_peak_mb']} MB per partition and the worker"
                  f" peaked at {unbounded['peak_rss_mb']} MB; with the budget, {bounded['peak_rss_mb']} MB; without"
                  f" skew (all streams live), {baseline['peak_rss_mb']} MB"],
    }
