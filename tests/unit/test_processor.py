"""The stream processor keeps going on bad input and loses nothing: every bad message becomes a dead letter."""

from __future__ import annotations

import base64
import io
import struct

import numpy as np
from PIL import Image

from fusewatch.core.codec import encode
from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk
from fusewatch.core.timeutil import NS_PER_MIN, NS_PER_S
from fusewatch.core.topics import Topics
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput
from streams.settings import StreamSettings

TOPICS = Topics()


def jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64), value, dtype=np.uint8), mode="L").save(buffer, format="JPEG")
    return buffer.getvalue()


def good_messages(minutes: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    out = [(TOPICS.maintenance_logs, encode(MaintenanceLog(asset_id="pump-01", ts=5 * NS_PER_S, text="insp ok")))]
    for minute in range(minutes):
        ts = minute * NS_PER_MIN
        out.append((TOPICS.vibration, encode(VibrationChunk(
            asset_id="pump-01", sensor_id="de", ts=ts + NS_PER_S, sample_rate_hz=2560.0, unit="g",
            samples=rng.standard_normal(2560).astype(np.float32)))))
        out.append((TOPICS.frames, encode(CameraFrame(
            asset_id="pump-01", camera_id="cam-1", ts=ts + 30 * NS_PER_S, width=64, height=64, encoding="jpeg",
            data=jpeg(100 + minute % 5)))))
    return out


def run(messages: list[tuple[str, bytes]]) -> tuple[StreamProcessor, CollectingOutput]:
    output = CollectingOutput()
    processor = StreamProcessor(StreamSettings(), output, run_id="test")
    for offset, (topic, raw) in enumerate(messages):
        processor.handle(raw, topic, 0, offset, now_ns=0)
    processor.flush()
    return processor, output


def test_bad_messages_are_dead_lettered_and_processing_continues() -> None:
    good = good_messages(30)
    header = b'{"asset_id":"pump-01","ts":0,"text":"ok","x":1}'
    nan_chunk = bytearray(good[1][1])
    nan_chunk[-4:] = np.array([np.nan], dtype="<f4").tobytes()
    bad = [
        (TOPICS.vibration, b"garbage"),
        (TOPICS.vibration, bytes(nan_chunk)),
        (TOPICS.frames, good[2][1][:-200]),  # truncated frame
        (TOPICS.maintenance_logs, struct.pack("<2sBBI", b"FW", 1, 3, len(header)) + header),
    ]
    mixed = good[:10] + bad + good[10:]
    processor, output = run(mixed)
    _, clean = run(good)
    assert processor.stats.dead_letters == {"invalid": 4}
    assert [letter.offset for letter in output.letters] == [10, 11, 12, 13]
    assert "samples: contains NaN" in output.letters[1].error
    assert "unknown field" in output.letters[3].error
    assert base64.b64decode(output.letters[0].raw_base64) == b"garbage"
    assert output.letters[2].raw_base64 == "" and "withheld" in output.letters[2].error  # no frame bytes kept
    assert [s.score.fused for s in output.scored] == [s.score.fused for s in clean.scored]  # good output unchanged
    assert len(output.scored) == 30


def test_late_events_are_dead_lettered_with_reason() -> None:
    good = good_messages(5)
    late = (TOPICS.vibration, encode(VibrationChunk(asset_id="pump-01", sensor_id="nde", ts=NS_PER_S,
                                                    sample_rate_hz=100.0, unit="g", samples=np.ones(100, np.float32))))
    processor, output = run([*good, late])
    assert processor.stats.dead_letters == {"late": 1}
    assert output.letters[0].error == "late" and output.letters[0].offset == len(good)


def test_duplicates_do_not_change_scores() -> None:
    good = good_messages(10)
    processor, output = run([message for message in good for _ in range(2)])  # every message delivered twice
    _, clean = run(good)
    assert processor.aligner.stats.duplicates == len(good)
    assert not processor.stats.dead_letters
    assert [s.score.fused for s in output.scored] == [s.score.fused for s in clean.scored]


def test_operator_instructions_reach_the_alert_policy_and_not_the_models() -> None:
    from fusewatch.core.events import Score

    output = CollectingOutput()
    processor = StreamProcessor(StreamSettings(), output, run_id="test")

    def high(minute: int, asset: str) -> Score:
        end = minute * NS_PER_MIN
        return Score(asset_id=asset, window_start=end - NS_PER_MIN, window_end=end, fused=0.9, calibrated={},
                     raw={}, contributions={"vibration": 0.9}, present={"vibration": True}, leading="vibration",
                     top_features=[], warmup=False, model_version="v", run_id="test")

    def instruct(offset: int, **fields: object) -> None:
        entry = MaintenanceLog(asset_id=str(fields.pop("asset")), text="operator", **fields)  # type: ignore[arg-type]
        processor.handle(encode(entry), TOPICS.maintenance_logs, 0, offset, now_ns=0)

    opened = [a for minute in range(1, 4) for a in processor.alerts.update(high(minute, "pump-01"))]
    assert [a.transition for a in opened] == ["opened"]
    instruct(0, asset="pump-01", ts=4 * NS_PER_MIN, action="acknowledge")
    instruct(1, asset="pump-01", ts=5 * NS_PER_MIN, action="acknowledge")  # again: nothing new
    assert [(a.transition, a.alert_id) for a in output.alerts] == [("acknowledged", opened[0].alert_id)]
    later = [a.transition for minute in range(4, 9) for a in processor.alerts.update(high(minute, "pump-01"))]
    assert later == []  # acknowledged: no escalation

    instruct(2, asset="motor-02", ts=0, action="maintenance", until=60 * NS_PER_MIN)
    during = [a.transition for minute in range(1, 10) for a in processor.alerts.update(high(minute, "motor-02"))]
    assert during == ["suppressed"]
    after = [a.transition for minute in range(60, 63) for a in processor.alerts.update(high(minute, "motor-02"))]
    assert after == ["opened"]
    assert processor.aligner.stats.accepted == 0  # instructions are never aligned nor scored
