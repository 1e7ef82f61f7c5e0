"""Capacity of the embedded runner: machines watched in real time per core, beside the compute floor; memory.

The plant's messages (the input topics' bytes) are generated once per size, in a process of their own, into a
file of one pickled list per minute. Every measurement is then a fresh process reading that file minute by
minute, so it holds none of the simulator's state. The runner process times, in CPU seconds, only the embedded
runner's calls on each minute's messages (bus, decode, alignment, features, models, calibration, fusion, alert
policy), after the first minutes (model creation, first frames). A machine sends one minute of data per
minute, so one core watches 60 × asset-minutes per CPU-second machines in real time. The compute floor is a
process of its own that decodes and aligns the same messages untimed, then times only `Pipeline.process`
(features, detectors, calibration, fusion) on the same windows after the same untimed minutes; the framework
overhead is the runner's throughput divided by the floor's (runner and floor alternate). Memory per asset is
the runner process's resident memory at the end less that of a one-asset run of the same length, divided by
the assets beyond the first.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.run import method_text, stat
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.config import FusewatchConfig
from fusewatch.core.codec import decode, decode_pixels, encode
from fusewatch.core.events import CameraFrame
from fusewatch.core.topics import Topics
from streams.aligner import AlignedWindow, Aligner
from streams.pipeline import Pipeline
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner
from streams.settings import StreamSettings

GOAL_MACHINES = 100_000
GOAL_OVERHEAD = 0.8
GOAL_MIB_PER_ASSET = 2.0


@dataclass(frozen=True)
class Size:
    assets: int
    minutes: int
    warm: int  # minutes not timed
    repetitions: int
    floor: bool = True  # also run the compute floor (False: a memory row of a mature deployment)

    @property
    def label(self) -> str:
        return str(self.assets) if self.floor else f"{self.assets} after {self.minutes / 60:g} h"


# Young deployments of 10 to 1,000 assets; then 10 assets after 26 h of plant time, when the day of values and
# frames the models learn late is full (their memory per asset is that of a mature deployment).
SIZES = (Size(10, 120, 30, 3), Size(100, 30, 10, 3), Size(1000, 6, 3, 1), Size(10, 1560, 1500, 1, floor=False))
QUICK = (Size(10, 20, 5, 1), Size(30, 6, 2, 1))

#: What the profiles showed and what was changed (kept with the code that measures it; see docs/benchmarks.md).
PROFILE_NOTES = [
    "Batch scoring (each plant minute's windows scored as one batch: Pipeline.process_batch), profile before →"
    " after (cProfile of the floor, 100 assets, the 20 timed minutes; cProfile roughly doubles the time, so the"
    " shares matter, not the sums). Window by window: 3.41 ms a window under the profiler (1.94 without) — torch's"
    " conv2d 0.45 ms and conv_transpose2d 0.25 ms (one frame per call), autograd's backward 0.26 ms (the warm-up's"
    " training steps, one model at a time), the 25,600-sample rfft 0.27 ms, the envelope's inverse FFT 0.12 ms,"
    " the features' own Python 0.15 ms, torch's module-call machinery ~0.1 ms. In batches: 1.48 ms under the"
    " profiler (0.96 without) — rfft 0.16 ms (one call per 16 snapshots), torch.bmm 0.13 ms and baddbmm 0.05 ms"
    " (every model of the run in one product per layer), inverse FFT 0.06 ms, backward 0.04 ms (the training"
    " steps due together, 8 models a pass), the deviation detectors' z-scores 0.06 ms and river's StandardScaler"
    " 0.05 ms, calibration, fusion and the Score 0.26 ms (per window, in order: they are the per-asset"
    " semantics). What remains is per-window Python and the FFT's arithmetic; the runner adds decoding (JPEG,"
    " pydantic), alignment and outputs, 0.44 ms a window at 1,000 assets, now a third of its time.",
    "Tried for the camera and left out: grouped convolutions (groups = models) and torch.func.vmap over stacked"
    " modules, 0.27 and 0.32 ms a frame at 500 frames against 0.57 ms one at a time; the batched matrix products"
    " take 0.09 ms a frame for the forward pass at 100 frames. Not tried: float32 FFTs (the features must stay"
    " bit for bit those of feature sets computed at the edge by earlier versions).",
    "Memory per asset after batch scoring: the rows of 10 and 100 assets report 8.1 and 2.5 MiB per asset against"
    " 1.07 and 1.10 before, the row of 1,000 assets 0.74 against 0.66, and the mature row 9.3 against 1.5. The"
    " figure divides the resident memory above a one-asset run by the assets beyond the first, so memory that"
    " does not grow with the assets (the vibration workspace of a slice of 16 snapshots, 11.5 MB; the stacked"
    " weights, activations and gradients of 8 to 64 models at a time, which the allocator keeps once it had them)"
    " weighs on small plants: 70–140 MB more here. Measured apart, a camera detector after three training"
    " steps holds 1.33 MiB against 1.01 MiB before (40 detectors, resident memory). The 10-asset figure is"
    " mostly noise: three more fresh-process runs of the same measurement (10 assets x 120 min) ended at 830,"
    " 845 and 885 MiB resident against 810–815 MiB for one asset, i.e. 1.7, 3.7 and 8.2 MiB per asset; the"
    " allocator leaves 50 MB more or less resident from run to run, which ten assets cannot average out. The"
    " goal of ≤ 2 MiB per asset is missed in the runs recorded here at 10 and 100 assets.",
    "Profile (py-spy, 100 assets, the runner's calls only): `Pipeline.process` 88 %, the runner's own work 12 %:"
    " JPEG decoding with Pillow 6.7 % (117 µs a frame, mostly its per-image plugin machinery), the envelope and"
    " vibration decode 3 %, pydantic validation of the events 2 %, alignment 2 %. Frames are now decoded with"
    " libjpeg-turbo through simplejpeg (48 µs a frame, the same pixels).",
    "Method, before → after: the floor used to run in the runner's process right after it, and the runner"
    " generated each minute's messages between its timed calls, so its resident memory included the"
    " simulator's per-asset state (noise pools) and its caches were evicted by the simulator's work. The"
    " messages are now generated once in a process of their own and read back minute by minute; runner and"
    " floor each run in a fresh process. On 100 assets (runner / floor, 2 runs each): same process 0.78;"
    " separate processes 0.74–0.77 (the order was not what held the ratio down); with the simplejpeg decoder"
    " 0.79–0.84; reading the messages instead of generating them beside the runner 0.85–0.92. Memory per asset"
    " went from 4.3 to 1.1–1.3 MiB, a measuring artefact (the simulator's memory), not a change of fusewatch.",
    "Memory, what is live: returning the free heap pages (glibc `malloc_trim`) after a run leaves 0.6–0.75 MiB"
    " per asset; the rest of the resident figure is freed but fragmented heap (100 KB snapshots, FFT and"
    " training buffers between long-lived model state). Tried and left out: a fixed 128 KiB mmap threshold"
    " (−0.5 MiB per asset, +24 % CPU), jemalloc 5.3 (1.65 against 1.9 MiB per asset, no real gain), a periodic"
    " `malloc_trim` (lowers the memory between batches, not the peak while scoring).",
    "Memory of a mature asset, before → after: the day of values waiting to be learned late was a deque of"
    " (window, value) tuples, about 120 bytes a value; the calibrators' two-day histories a deque plus a sorted"
    " list of float objects. Both are flat arrays now (`models/fifo.FloatFifo`, `array('d')`): measured with"
    " tracemalloc, a day of pending values for 3 channels 478 → 73 KiB, one calibrator's two days 113 → 46 KiB,"
    " about 0.65 MiB less per asset once the histories are full.",
    "Tried and reverted: decoding vibration samples as a view of the message instead of a copy. The view is"
    " unaligned (it starts after the JSON header), numpy's float sums then round differently from those on an"
    " aligned copy, and a worker restored from a checkpoint no longer scored bit for bit as the uninterrupted"
    " stream (caught by tests/unit/test_partition_state.py).",
    "Memory per asset, batch against window by window (2026-12-07, 100 assets x 30 min, fresh processes, the"
    " one-asset run subtracted as in the table): scored in batches 2.26-2.57 MiB per asset over four runs; the same"
    " runner with StreamProcessor.batch made a no-op (every window scored alone as it closes) 1.75-1.86 MiB over"
    " two. A batch keeps the decoded inputs of all its windows alive until it is scored (a 100 KB snapshot and a"
    " frame per window), and the heap keeps those pages afterwards; this is the price of the batch's speed (the"
    " worker bounds a batch at max_batch_windows). Smaller camera chunks (16 detectors instead of 64) and no kept"
    " vibration workspace changed nothing measurable (2.30-2.41 MiB).",
]

Message = tuple[str, bytes, bytes, int]
T = TypeVar("T")


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


def write_steps(size: Size, path: Path) -> dict[str, int]:
    """Generate the plant's messages into ``path`` (one pickled list per minute), in a process of its own, so the
    measuring processes hold none of the simulator's state. Returns the messages and bytes written."""
    messages = size_bytes = 0
    with path.open("wb") as out:
        for step in encoded_steps(plant(size)):
            pickle.dump(step, out, protocol=5)
            messages += len(step)
            size_bytes += sum(len(value) for _, _, value, _ in step)
    return {"messages": messages, "bytes": size_bytes}


def read_steps(path: Path) -> Iterator[list[Message]]:
    """The minutes written by :func:`write_steps`, read one at a time (as a consumer receives its bytes)."""
    with path.open("rb") as source:
        while True:
            try:
                yield pickle.load(source)
            except EOFError:
                return


def run_embedded(steps: Iterable[list[Message]], size: Size) -> dict[str, float]:
    """The embedded runner, minute by minute; CPU seconds of the timed minutes and the resident memory at the end.

    Only the runner's calls are timed; the messages of each minute are read before them.
    """
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(StreamSettings(), output, assets=plant(size).asset_registry()))
    cpu = 0.0
    windows = 0
    for index, step in enumerate(steps):
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


def aligned_windows(steps: Iterable[list[Message]]) -> list[list[AlignedWindow]]:
    """The windows each step closes, decoded and aligned as the runner does (for the floor)."""
    aligner = Aligner(FusewatchConfig().aligner)
    out = []
    now = 0
    for step in steps:
        closed: list[AlignedWindow] = []
        for _, _, value, ts in step:
            event = decode(value)
            now = max(now, ts)
            pixels = decode_pixels(event) if isinstance(event, CameraFrame) else None
            closed += aligner.add(event, pixels, now).windows
        closed += aligner.expire_idle(now)
        out.append(closed)
    return out


def run_floor(windows: list[list[AlignedWindow]], size: Size) -> dict[str, float]:
    """Only the pipeline (features, models, calibration, fusion) on the aligned windows of the timed steps, each
    step's windows as one batch (as the runner scores them)."""
    pipeline = Pipeline(FusewatchConfig().models, assets=plant(size).asset_registry())
    cpu, count = 0.0, 0
    for index, closed in enumerate(windows):
        started = time.process_time()
        for _ in pipeline.process_batch(closed):
            pass
        if index >= size.warm:
            cpu += time.process_time() - started
            count += len(closed)
    return {"cpu_s": cpu, "windows": count}


def measure(size: Size, what: str, path: Path) -> dict[str, float]:
    """One run of the runner or of the floor in this (fresh) process on the messages in ``path``: windows per
    CPU-second of the timed minutes; for the runner also the resident memory at the end."""
    if what == "runner":
        embedded = run_embedded(read_steps(path), size)
        return {"rate": embedded["windows"] / embedded["cpu_s"], "memory_bytes": embedded["resident_bytes"],
                "timed_windows": embedded["windows"]}
    floor = run_floor(aligned_windows(read_steps(path)), size)
    return {"rate": floor["windows"] / floor["cpu_s"], "timed_windows": floor["windows"]}


def in_fresh_process(function: Callable[..., T], *args: Any) -> T:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    sizes = QUICK if quick else SIZES
    rows: list[list[Any]] = []
    figures: dict[str, dict[str, Any]] = {}
    baselines: dict[int, float] = {}
    for size in sizes:
        runner_rates, floor_rates, memory = [], [], []
        timed = 0
        with tempfile.TemporaryDirectory(prefix="fusewatch-capacity-") as directory:
            if size.minutes not in baselines:  # a one-asset run as long as this one
                one = Size(1, size.minutes, size.warm, 1)
                in_fresh_process(write_steps, one, Path(directory) / "one.pickle")
                baselines[size.minutes] = in_fresh_process(measure, one, "runner", Path(directory) / "one.pickle")[
                    "memory_bytes"]
                log(f"[capacity] one asset x {size.minutes} min: {baselines[size.minutes] / 2**20:.1f} MiB resident")
            path = Path(directory) / "steps.pickle"
            written = in_fresh_process(write_steps, size, path)
            log(f"[capacity] {size.assets} assets x {size.minutes} min: {written['messages']} messages,"
                f" {written['bytes'] / 1e6:.0f} MB")
            for repetition in range(1, size.repetitions + 1):
                result = in_fresh_process(measure, size, "runner", path)
                runner_rates.append(result["rate"])
                if size.floor:
                    floor_rates.append(in_fresh_process(measure, size, "floor", path)["rate"])
                memory.append((result["memory_bytes"] - baselines[size.minutes]) / max(1, size.assets - 1) / 2**20)
                timed = int(result["timed_windows"])
                log(f"[capacity] {size.label} assets, repetition {repetition}: runner {runner_rates[-1]:.0f}"
                    + (f", floor {floor_rates[-1]:.0f}" if floor_rates else "")
                    + f" asset-minutes per CPU-second; {memory[-1]:.2f} MiB per asset")
        entry: dict[str, Any] = {
            "runner_asset_minutes_per_cpu_s": stat(runner_rates, 1),
            "machines_per_core": stat((60 * r for r in runner_rates), 0),
            "runner_ms_per_window": stat((1000 / r for r in runner_rates), 3),
            "mib_per_asset": stat(memory, 3), "timed_windows": timed, "floor_measured": size.floor,
        }
        if floor_rates:
            entry.update({
                "floor_asset_minutes_per_cpu_s": stat(floor_rates, 1),
                "floor_machines_per_core": stat((60 * f for f in floor_rates), 0),
                "floor_ms_per_window": stat((1000 / f for f in floor_rates), 3),
                "overhead_ratio": stat((r / f for r, f in zip(runner_rates, floor_rates, strict=True)), 3),
            })
        figures[size.label] = entry
        rows.append([size.label, f"{size.minutes - size.warm} of {size.minutes}", entry["runner_ms_per_window"],
                     entry.get("floor_ms_per_window", "–"), entry["machines_per_core"],
                     entry.get("floor_machines_per_core", "–"), entry.get("overhead_ratio", "–"),
                     entry["mib_per_asset"]])
    worst = min(f["machines_per_core"]["median"] for f in figures.values())
    worst_overhead = min(f["overhead_ratio"]["median"] for f in figures.values() if "overhead_ratio" in f)
    worst_memory = max(f["mib_per_asset"]["median"] for f in figures.values())
    met = worst >= GOAL_MACHINES and worst_overhead >= GOAL_OVERHEAD and worst_memory <= GOAL_MIB_PER_ASSET
    return {
        "title": "Capacity, framework overhead and memory (embedded runner)",
        "method": method_text(__doc__),
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
                    "rows": rows,
                    "goals": {"machines per core": GOAL_MACHINES, "runner / floor": GOAL_OVERHEAD,
                              "MiB per asset": GOAL_MIB_PER_ASSET}}],
        "figures": figures,
        "notes": [f"A one-asset run ends with {min(baselines.values()) / 2**20:.0f}–"
                  f"{max(baselines.values()) / 2**20:.0f} MiB resident (Python, torch, the models' code); that is"
                  " subtracted before dividing by the assets beyond the first. The young rows are minutes to hours"
                  " of plant time; the last row is 10 assets after 26 h, when the day of values and frames the"
                  " models learn a day late is full (the calibrators' two-day histories grow for another day).",
                  *PROFILE_NOTES],
    }
