"""Vibration features computed at the edge (wire kind 4): strict contract, exact round trip, and the pipeline scores
them exactly as it scores the waveforms they were computed from."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from connectors.ingest.edge import EdgeFeatures, wire_sizes
from connectors.sources.recording import Recording, RecordingWriter
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.assets import AssetInfo, AssetRegistry, BearingKinematics
from fusewatch.core.codec import KIND_FEATURES, decode, encode
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import (
    VIBRATION_FEATURE_SETS,
    VIBRATION_FEATURES_VERSION,
    CameraFrame,
    VibrationChunk,
    VibrationFeatureSet,
)
from fusewatch.core.history import RecordedMessage
from fusewatch.core.timeutil import NS_PER_MIN
from fusewatch.core.topics import Topics
from models.vibration import VibrationFeatures
from streams.alerts import AlertPolicyConfig
from streams.model_config import ModelConfig
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner
from streams.settings import StreamSettings

TOPICS = Topics()
BEARING = BearingKinematics(25.0, 81.1, 118.9, 63.9, 14.8)


def chunk(minute: int = 0, asset: str = "pump-01", n: int = 25_600) -> VibrationChunk:
    samples = np.random.default_rng(minute).standard_normal(n).astype(np.float32)
    return VibrationChunk(asset_id=asset, sensor_id="de", ts=minute * NS_PER_MIN + 123_456_789,
                          sample_rate_hz=25_600.0, unit="g", samples=samples)


def features_message(names: list[str], values: list[float], **header: object) -> bytes:
    fields: dict[str, object] = {"asset_id": "pump-01", "sensor_id": "de", "ts": "2026-11-30T00:00:00Z",
                                 "sample_rate_hz": 25600.0, "unit": "g", "n_samples": 25600,
                                 "features_version": VIBRATION_FEATURES_VERSION, "names": names}
    fields.update(header)
    head = json.dumps(fields).encode()
    return struct.pack("<2sBBI", b"FW", 1, KIND_FEATURES, len(head)) + head + struct.pack(f"<{len(values)}d", *values)


REQUIRED, ENVELOPE = VIBRATION_FEATURE_SETS[VIBRATION_FEATURES_VERSION]


def test_the_contract_names_exactly_what_the_extractor_computes() -> None:
    extractor = VibrationFeatures()
    assert extractor.version == VIBRATION_FEATURES_VERSION
    samples = chunk().samples
    assert tuple(extractor.transform(samples, 25_600.0, None)) == REQUIRED
    assert tuple(extractor.transform(samples, 25_600.0, BEARING)) == REQUIRED + ENVELOPE


@pytest.mark.parametrize("bearing", [BEARING, None])
def test_round_trip_is_exact_and_lands_on_the_vibration_topic(bearing: BearingKinematics | None) -> None:
    original = chunk()
    features = EdgeFeatures(lambda asset_id: bearing).convert(original)
    raw = encode(features)
    assert raw[:4] == b"FW\x01\x04"
    back = decode(raw)
    assert isinstance(back, VibrationFeatureSet)
    assert back == features and list(back.features) == list(features.features)  # bit for bit, in order
    assert back.duration_ns == original.duration_ns and back.ts == original.ts
    assert TOPICS.for_event(back) == TOPICS.vibration
    assert EdgeFeatures(lambda asset_id: bearing).convert_message(encode(original)) == raw
    sizes = wire_sizes(original, features)
    assert sizes.waveform == len(encode(original)) and sizes.features == len(raw) < 600


@pytest.mark.parametrize(("mutate", "field", "reason"), [
    (lambda n, v, h: (n, [float("nan"), *v[1:]], h), "features", "rms: not a finite number"),
    (lambda n, v, h: (n, [float("inf"), *v[1:]], h), "features", "rms: not a finite number"),
    (lambda n, v, h: (n, v, {**h, "features_version": "vibration-v9"}), "features_version",
     "unknown feature set 'vibration-v9'"),
    (lambda n, v, h: (["rms_x", *n[1:]], v, h), "features", "'rms_x' is not a feature of vibration-v1"),
    (lambda n, v, h: (n[:-1], v[:-1], h), "features", "'centroid_hz' is missing"),
    (lambda n, v, h: ([*n, "env_bpfo"], [*v, 1.0], h), "features", "'env_bpfi' is missing"),
    (lambda n, v, h: (["rms", *n], [1.0, *v], h), "names", "feature 'rms' appears twice"),
    (lambda n, v, h: (n, v[:-1], h), "features", "truncated: header names 14 features (112 bytes), payload has 104"),
    (lambda n, v, h: ([f"x{i}" for i in range(65)], [0.0] * 65, h), "names", "has 65 features, more than 64"),
    (lambda n, v, h: (n, v, {**h, "features": {}}), "features", "belongs in the payload, not in the header"),
    (lambda n, v, h: (n, v, {**h, "n_samples": 0}), "n_samples", "greater than or equal to 1"),
    (lambda n, v, h: (n, v, {**h, "extra": 1}), "extra", "unknown field"),
    (lambda n, v, h: ("rms", v, h), "names", "missing or not a list of feature names"),
])
def test_bad_feature_sets_get_one_error_naming_the_field(mutate: object, field: str, reason: str) -> None:
    names, values, header = mutate(list(REQUIRED), [1.0] * len(REQUIRED), {})  # type: ignore[operator]
    with pytest.raises(InvalidEventError) as caught:
        decode(features_message(names, values, **header))
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_the_processor_dead_letters_a_bad_feature_set_and_keeps_scoring() -> None:
    output = CollectingOutput()
    processor = StreamProcessor(StreamSettings(), output, run_id="t", processing_clock=lambda: 0)
    edge = EdgeFeatures(lambda asset_id: None)
    bad = features_message(list(REQUIRED), [1.0] * len(REQUIRED), features_version="vibration-v0")
    for minute in range(5):
        processor.handle(encode(edge.convert(chunk(minute, n=2048))), TOPICS.vibration, 0, 2 * minute, 0)
        processor.handle(bad, TOPICS.vibration, 0, 2 * minute + 1, 0)
    processor.flush()
    assert len(output.scored) == 5 and all(s.score.present["vibration"] for s in output.scored)
    assert len(output.letters) == 5
    assert output.letters[0].error.startswith("invalid: features_version: unknown feature set 'vibration-v0'")


@dataclass
class _Run:
    output: CollectingOutput
    messages: int
    vibration_bytes: int


def _run(plant: PlantSimulator, edge: EdgeFeatures | None, assets: list[str]) -> _Run:
    """The plant through the embedded runner, its vibration chunks as waveforms or converted at the edge."""
    settings = StreamSettings(
        models=ModelConfig(warmup_windows=60, calibration_min_samples=10, learn_delay=0),
        alerts=AlertPolicyConfig(open_threshold=0.05, close_threshold=0.02, close_windows=5, cooldown_s=60))
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(settings, output, run_id="edge", processing_clock=lambda: 0,
                                            assets=plant.asset_registry()))
    messages = vibration_bytes = 0
    for step in plant.steps(assets):
        for event in step:
            if isinstance(event, CameraFrame):
                continue  # the camera channel is the same either way; leaving it out keeps the test short
            if edge is not None and isinstance(event, VibrationChunk):
                event = edge.convert(event)
            raw = encode(event)
            if TOPICS.for_event(event) == TOPICS.vibration:
                vibration_bytes += len(raw)
            runner.publish(TOPICS.for_event(event), event.asset_id.encode(), raw, event.ts)
            messages += 1
        runner.pump()
    runner.finish()
    return _Run(output, messages, vibration_bytes)


def test_features_at_the_edge_score_exactly_like_the_waveforms() -> None:
    """A pump over a day whose outer-race bearing fault grows, fails and is repaired: every window's scores and
    every alert are identical whether the workers see the waveforms or the features computed at the edge."""
    plant = PlantSimulator(SimulatorConfig(
        assets=6, days=1.05, seed=2, fault_free_days=0.05, min_fault_days=0.2, max_fault_days=0.4,
        min_downtime_hours=1.0, max_downtime_hours=2.0, sample_rate_hz=4_000.0, frame_size=64,
        snapshot_seconds=0.5))
    fault = plant.fault_plan("pump-01")
    assert fault is not None and fault.fault_type == "bearing_outer" and fault.restart_ns < plant.config.end_ns
    waveform = _run(plant, None, ["pump-01"])
    edge = _run(plant, EdgeFeatures(plant.asset_registry().bearings), ["pump-01"])
    assert waveform.messages == edge.messages
    assert edge.vibration_bytes * 10 < waveform.vibration_bytes  # 2,000-sample chunks here
    a, b = waveform.output, edge.output
    assert not a.letters and not b.letters
    assert len(a.scored) == len(b.scored) > 1.05 * 24 * 60 * 0.8
    for mine, theirs in zip(a.scored, b.scored, strict=True):
        assert mine.score.model_dump() == theirs.score.model_dump()  # fused, calibrated, raw, features: exactly
    assert [s.score.present["vibration"] for s in a.scored].count(True) > 1000
    assert len(a.alerts) >= 10 and {"opened", "escalated", "closed"} <= {alert.transition for alert in a.alerts}
    assert [alert.model_dump() for alert in a.alerts] == [alert.model_dump() for alert in b.alerts]


def test_recordings_keep_feature_sets_as_header_rows_byte_for_byte(tmp_path: Path) -> None:
    edge = EdgeFeatures(lambda asset_id: BEARING)
    values = [encode(chunk(0, n=4096)), *(encode(edge.convert(chunk(m, n=4096))) for m in range(1, 4))]
    nan = features_message(list(REQUIRED), [float("nan")] * len(REQUIRED))
    messages = [RecordedMessage("vibration", 0, offset, offset * 60_000, b"pump-01", value)
                for offset, value in enumerate([*values, nan])]
    writer = RecordingWriter(tmp_path, {"test": True}, None, None, {("vibration", 0): (0, len(messages))})
    for message in messages:
        writer.add(message)
    writer.finish()
    recording = Recording(tmp_path)
    recording.verify()
    assert [m.value for m in recording.messages()] == [m.value for m in messages]
    rows = [json.loads(line) for line in next((tmp_path / "vibration").glob("*.jsonl")).read_text().splitlines()]
    assert [sorted(set(r) & {"payload", "values", "raw_base64"}) for r in rows] == [
        ["payload"], ["values"], ["values"], ["values"], ["raw_base64"]]  # NaN is not JSON: kept whole
    assert rows[1]["header"]["names"][0] == "rms" and len(rows[1]["values"]) == 18


def test_a_chunk_and_its_features_are_one_reading_and_windows_may_mix_them() -> None:
    output = CollectingOutput()
    processor = StreamProcessor(StreamSettings(), output, run_id="t", processing_clock=lambda: 0,
                                assets=AssetRegistry({"pump-01": AssetInfo("pump", BEARING)}))
    with_envelope, without = EdgeFeatures(lambda asset_id: BEARING), EdgeFeatures(lambda asset_id: None)
    first, second = chunk(0, n=4096), chunk(0, n=4096).model_copy(update={"ts": 2 * 10**9, "sensor_id": "nde"})
    messages = [encode(first), encode(with_envelope.convert(first)),  # the same reading twice: a duplicate
                encode(without.convert(second))]  # another sensor in the same window, without envelope features
    for offset, raw in enumerate(messages):
        processor.handle(raw, TOPICS.vibration, 0, offset, 0)
    processor.flush()
    assert processor.aligner.stats.duplicates == 1 and not output.letters
    [scored] = output.scored
    expected = VibrationFeatures().transform(first.samples, first.sample_rate_hz, None)
    mixed = without.convert(second).features
    assert list(scored.score.features) == list(expected)  # the features both have: no env_*
    assert scored.score.features == {name: float(np.mean([expected[name], mixed[name]])) for name in expected}
