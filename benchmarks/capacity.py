"""Capacity of the embedded runner: machines watched in real time per core, beside the compute floor; memory.

Every run is a fresh process. It generates the simulated plant's messages one minute at a time and times, in CPU
seconds, only the embedded runner's calls on them (bus, decode, alignment, features, models, calibration,
fusion, alert policy), after the first minutes (model creation, first frames). A machine sends one minute of
data per minute, so one core watches 60 × asset-minutes per CPU-second machines in real time. The compute floor
runs only `Pipeline.process` (features, detectors, calibration, fusion) on the same windows, already decoded and
aligned; the framework overhead is the runner's throughput divided by the floor's. Memory per asset is the
run's resident memory at the end less that of a one-asset run, divided by the assets beyond the first.
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.run import stat
from connectors.simulator import PlantSimulator, SimulatorConfig
from fusewatch.codec import decode, decode_pixels, encode
from fusewatch.config import FusewatchConfig
from fusewatch.events import CameraFrame
from fusewatch.topics import Topics
from streams.aligner import AlignedWindow, Aligner
from streams.embedded import CollectingOutput, EmbeddedRunner
from streams.pipeline import Pipeline
from streams.processor import StreamProcessor

GOAL_MACHINES = 4000
GOAL_OVERHEAD = 0.8
GOAL_MIB_PER_ASSET = 2.0


@dataclass(frozen=True)
class Size:
    assets: int
    minutes: int
    warm: int  # minutes not timed
    repetitions: int


SIZES = (Size(10, 240, 60, 3), Size(100, 30, 10, 3), Size(1000, 6, 3, 1))
QUICK = (Size(10, 20, 5, 1), Size(30, 6, 2, 1))

Message = tuple[str, bytes, bytes, int]


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def plant(size: Size) -> PlantSimulator:
    return PlantSimulator(SimulatorConfig(assets=size.assets, days=size.minutes / 1440, seed=0))


def encoded_steps(simulated: PlantSimulator) -> Iterator[list[Message]]:
    """The plant's messages minute by minute, encoded (the input topics' bytes), made one minute at a time."""
    topics = Topics()
    for step in simulated.steps():
        yield [(topics.for_event(e), e.asset_id.encode(), encode(e), e.ts) for e in step]


def run_embedded(simulated: PlantSimulator, size: Size) -> dict[str, float]:
    """The embedded runner, minute by minute; CPU seconds of the timed minutes and the resident memory at the end.

    Only the runner's calls are timed; the messages of each minute are generated before them.
    """
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(FusewatchConfig(), output, bearings=simulated.asset_registry().bearings))
    cpu = 0.0
    windows = 0
    for index, step in enumerate(encoded_steps(simulated)):
        started = time.process_time()
        for topic, key, value, ts in step:
            runner.publish(topic, key, value, ts)
        runner.pump()
        if index >= size.warm:
            cpu += time.process_time() - started
            windows += len(output.scored)
        output.take()
    del step
    gc.collect()
    return {"cpu_s": cpu, "windows": windows, "resident_bytes": resident_bytes()}


def aligned_windows(simulated: PlantSimulator) -> list[list[AlignedWindow]]:
    """The windows each step closes, decoded and aligned as the runner does (for the floor)."""
    aligner = Aligner(FusewatchConfig().aligner)
    out = []
    now = 0
    for step in encoded_steps(simulated):
        closed: list[AlignedWindow] = []
        for _, _, value, ts in step:
            event = decode(value)
            now = max(now, ts)
            pixels = decode_pixels(event) if isinstance(event, CameraFrame) else None
            closed += aligner.add(event, pixels, now).windows
        closed += aligner.expire_idle(now)
        out.append(closed)
    return out


def run_floor(plant: PlantSimulator, windows: list[list[AlignedWindow]], size: Size) -> dict[str, float]:
    """Only the pipeline (features, models, calibration, fusion) on the aligned windows of the timed steps."""
    pipeline = Pipeline(FusewatchConfig().models, bearings=plant.asset_registry().bearings)
    cpu, count = 0.0, 0
    for index, closed in enumerate(windows):
        started = time.process_time()
        for window in closed:
            pipeline.process(window)
        if index >= size.warm:
            cpu += time.process_time() - started
            count += len(closed)
    return {"cpu_s": cpu, "windows": count}


def measure(size: Size) -> dict[str, float]:
    """One run in this (fresh) process: the runner, then the floor on the same windows."""
    simulated = plant(size)
    embedded = run_embedded(simulated, size)
    floor = run_floor(simulated, aligned_windows(simulated), size)
    return {"runner_rate": embedded["windows"] / embedded["cpu_s"], "floor_rate": floor["windows"] / floor["cpu_s"],
            "memory_bytes": embedded["resident_bytes"], "timed_windows": embedded["windows"]}


def in_fresh_process(size: Size) -> dict[str, float]:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, size).result()


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    sizes = QUICK if quick else SIZES
    rows: list[list[Any]] = []
    figures: dict[str, dict[str, Any]] = {}
    baseline_size = Size(1, sizes[0].minutes, sizes[0].warm, 1)
    baseline = in_fresh_process(baseline_size)["memory_bytes"]
    log(f"[capacity] one asset: {baseline / 2**20:.1f} MiB resident at the end")
    for size in sizes:
        runner_rates, floor_rates, memory = [], [], []
        timed = 0
        for repetition in range(1, size.repetitions + 1):
            result = in_fresh_process(size)
            runner_rates.append(result["runner_rate"])
            floor_rates.append(result["floor_rate"])
            memory.append((result["memory_bytes"] - baseline) / max(1, size.assets - 1) / 2**20)
            timed = int(result["timed_windows"])
            log(f"[capacity] {size.assets} assets, repetition {repetition}: runner {runner_rates[-1]:.0f},"
                f" floor {floor_rates[-1]:.0f} asset-minutes per CPU-second; {memory[-1]:.2f} MiB per asset")
        machines = stat((60 * r for r in runner_rates), 0)
        overhead = stat((r / f for r, f in zip(runner_rates, floor_rates, strict=True)), 3)
        figures[str(size.assets)] = {
            "runner_asset_minutes_per_cpu_s": stat(runner_rates, 1),
            "floor_asset_minutes_per_cpu_s": stat(floor_rates, 1),
            "machines_per_core": machines, "floor_machines_per_core": stat((60 * f for f in floor_rates), 0),
            "runner_ms_per_window": stat((1000 / r for r in runner_rates), 3),
            "floor_ms_per_window": stat((1000 / f for f in floor_rates), 3),
            "overhead_ratio": overhead, "mib_per_asset": stat(memory, 3), "timed_windows": timed,
        }
        entry = figures[str(size.assets)]
        rows.append([size.assets, f"{size.minutes - size.warm} of {size.minutes}", entry["runner_ms_per_window"],
                     entry["floor_ms_per_window"], machines, entry["floor_machines_per_core"], overhead,
                     entry["mib_per_asset"]])
    worst = min(f["machines_per_core"]["median"] for f in figures.values())
    worst_overhead = min(f["overhead_ratio"]["median"] for f in figures.values())
    worst_memory = max(f["mib_per_asset"]["median"] for f in figures.values())
    met = worst >= GOAL_MACHINES and worst_overhead >= GOAL_OVERHEAD and worst_memory <= GOAL_MIB_PER_ASSET
    return {
        "title": "Capacity, framework overhead and memory (embedded runner)",
        "method": __doc__.split("\n\n", 1)[1].replace("\n", " ") if __doc__ else "",
        "goal": {"text": f"≥ {GOAL_MACHINES} machines in real time per core; runner / floor ≥ {GOAL_OVERHEAD};"
                         f" ≤ {GOAL_MIB_PER_ASSET:g} MiB per asset",
                 "met": met,
                 "value": f"fewest machines per core {worst:.0f}; lowest runner / floor {worst_overhead:.3f};"
                          f" most memory per asset {worst_memory:.2f} MiB"},
        "parameters": {"sizes": [f"{s.assets} assets x {s.minutes} min ({s.warm} untimed), {s.repetitions} run(s)"
                                 for s in sizes],
                       "sampling": "1 s of vibration at 25.6 kHz, one 128x128 frame, per minute; logs"},
        "tables": [{"caption": "Per size (median (min–max) over the runs)",
                    "columns": ["assets", "timed minutes", "runner ms / window", "floor ms / window",
                                "machines per core", "floor: machines per core", "runner / floor",
                                "MiB per asset"],
                    "rows": rows}],
        "figures": figures,
        "notes": [f"A one-asset run ends with {baseline / 2**20:.1f} MiB resident (Python, torch, the models' code);"
                  " that is subtracted before dividing by the assets beyond the first. The runs are minutes to"
                  " hours of plant time: the calibrators' two-day histories, the day of values and frames waiting"
                  " to be learned and the log horizon fill over days, so this is the memory of a young deployment."],
    }
