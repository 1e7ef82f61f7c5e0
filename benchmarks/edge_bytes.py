"""Features at the edge: bytes per asset-minute on the vibration topic, waveform against features.

The simulator's vibration chunks (its default: a 1 s snapshot at 25.6 kHz every minute, bearing kinematics known)
are encoded as waveforms (wire kind 1) and, after `EdgeFeatures.convert`, as feature sets (wire kind 4); we
report the message value bytes (the Kafka key, the asset id, is the same either way and not counted) per
asset-minute for that chunking and for a gateway streaming 25.6 kHz continuously in 1 s chunks (60 a minute),
with and without bearing kinematics (no envelope features). Times: `EdgeFeatures.convert` per 1 s chunk at the
edge, and on the worker the decode of a waveform plus its features against the decode of a feature set, each
the mean over the chunks of one repetition, repeated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from statistics import mean
from typing import Any

from benchmarks.run import method_text, stat
from connectors.ingest.edge import EdgeFeatures
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import decode, encode
from fusewatch.core.events import VibrationChunk
from models.vibration import VibrationFeatures

GOAL_RATIO = 100.0
GOAL_CONVERT_MS = 5.0


def _chunks(assets: int, days: float) -> tuple[PlantSimulator, list[VibrationChunk]]:
    plant = PlantSimulator(SimulatorConfig(assets=assets, days=days, seed=1))
    chunks = [e for step in plant.steps() for e in step if isinstance(e, VibrationChunk)]
    return plant, chunks


def _mean_ms(action: Callable[[Any], object], items: list[Any]) -> float:
    """Mean milliseconds of ``action`` over ``items``."""
    started = time.perf_counter()
    for item in items:
        action(item)
    return (time.perf_counter() - started) / len(items) * 1000.0


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    assets, days, repetitions = (2, 0.005, 3) if quick else (4, 0.02, 7)
    plant, chunks = _chunks(assets, days)
    interval_min = plant.config.snapshot_interval_s / 60.0
    with_bearing = EdgeFeatures(plant.asset_registry().bearings)
    without_bearing = EdgeFeatures(lambda asset_id: None)
    waveform = mean(len(encode(c)) for c in chunks)
    sizes = {name: mean(len(encode(edge.convert(c))) for c in chunks)
             for name, edge in (("bearing", with_bearing), ("none", without_bearing))}
    log(f"[edge_bytes] {len(chunks)} chunks: waveform {waveform:.0f} B, features {sizes['bearing']:.0f} B")
    rows = []
    for label, per_minute in ((f"simulator default (1 s at {plant.config.sample_rate_hz:g} Hz every"
                               f" {plant.config.snapshot_interval_s:g} s)", 1.0 / interval_min),
                              ("continuous 25.6 kHz in 1 s chunks", 60.0)):
        for bearing, name in (("bearing kinematics known", "bearing"), ("no kinematics (no env_*)", "none")):
            rows.append([f"{label}, {bearing}", round(per_minute, 3), round(waveform * per_minute),
                         round(sizes[name] * per_minute), round(waveform / sizes[name], 1)])
    raws = [encode(c) for c in chunks]
    feature_raws = [encode(with_bearing.convert(c)) for c in chunks]
    extractor = VibrationFeatures()
    bearings = plant.asset_registry().bearings

    def worker_waveform(raw: bytes) -> None:
        event = decode(raw)
        assert isinstance(event, VibrationChunk)
        extractor.transform(event.samples, event.sample_rate_hz, bearings(event.asset_id))

    timings: dict[str, list[float]] = {"edge": [], "worker_waveform": [], "worker_features": []}
    for _ in range(repetitions):
        timings["edge"].append(_mean_ms(with_bearing.convert, chunks))
        timings["worker_waveform"].append(_mean_ms(worker_waveform, raws))
        timings["worker_features"].append(_mean_ms(decode, feature_raws))
    convert_ms = stat(timings["edge"])
    ratio = waveform / sizes["bearing"]
    met = ratio >= GOAL_RATIO and convert_ms["median"] <= GOAL_CONVERT_MS
    return {
        "title": "Features at the edge: bytes per asset-minute",
        "method": method_text(__doc__),
        "goal": {"text": f"feature sets at least {GOAL_RATIO:g}x smaller than the waveform; conversion at most"
                         f" {GOAL_CONVERT_MS:g} ms per 1 s chunk at 25.6 kHz", "met": met,
                 "value": f"{ratio:.0f}x smaller, {convert_ms['median']:.2f} ms per chunk"},
        "parameters": {"assets": assets, "days": days, "chunks": len(chunks), "repetitions": repetitions,
                       "sample_rate_hz": plant.config.sample_rate_hz, "snapshot_s": plant.config.snapshot_seconds},
        "tables": [
            {"caption": "Message value bytes per asset-minute on the vibration topic",
             "columns": ["chunking", "chunks per asset-minute", "waveform (kind 1) B", "features (kind 4) B",
                         "ratio"],
             "rows": rows},
            {"caption": "Time per 1 s chunk (ms)",
             "columns": ["where", "ms per chunk"],
             "rows": [["edge: EdgeFeatures.convert", convert_ms],
                      ["worker: decode a waveform + its features", stat(timings["worker_waveform"])],
                      ["worker: decode a feature set", stat(timings["worker_features"], 4)]]},
        ],
        "figures": {"waveform_bytes": round(waveform), "features_bytes": round(sizes["bearing"]),
                    "features_bytes_without_bearing": round(sizes["none"]), "ratio": round(ratio, 1),
                    "timings_ms": {k: stat(v, 4) for k, v in timings.items()}},
        "notes": [f"A 1 s chunk at 25.6 kHz is {waveform:.0f} bytes as a waveform and {sizes['bearing']:.0f} as"
                  f" features ({sizes['none']:.0f} without envelope features); about 200 bytes of the feature"
                  " set are its feature names (JSON header), 8 per value are the float64 payload.",
                  "The worker's vibration CPU moves to the edge: what remains is decoding a small message."],
    }
