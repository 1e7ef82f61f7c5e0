"""Recordings: every message back byte for byte, invalid ones included; resumable; damage is named, never read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from connectors.sources.recording import MANIFEST, Recording, RecordingWriter
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import decode, encode
from fusewatch.core.errors import RecordingError
from fusewatch.core.history import RecordedMessage, TopicKind
from fusewatch.core.topics import Topics

TOPICS = Topics()


def plant_messages(partitions: int = 2) -> list[RecordedMessage]:
    """A short simulated plant as the input topics would hold it (asset i in partition i % partitions)."""
    plant = PlantSimulator(SimulatorConfig(assets=3, days=0.02, seed=3, sample_rate_hz=2560.0))
    offsets: dict[tuple[str, int], int] = {}
    messages = []
    assets = plant.asset_ids
    for step in plant.steps():
        for event in step:
            kind: TopicKind = TOPICS.for_event(event).removeprefix(TOPICS.prefix)  # type: ignore[assignment]
            partition = assets.index(event.asset_id) % partitions
            offset = offsets.get((kind, partition), 0)
            offsets[(kind, partition)] = offset + 1
            messages.append(RecordedMessage(kind, partition, offset, event.ts // 1_000_000,
                                            event.asset_id.encode(), encode(event)))
    return messages


def with_bad_ones(messages: list[RecordedMessage]) -> list[RecordedMessage]:
    """Append garbage, a truncated chunk, NaN samples and a frame with a foreign encoding to partition 0."""
    vibration = next(m for m in messages if m.kind == "vibration" and m.partition == 0)
    frame = next(m for m in messages if m.kind == "frames" and m.partition == 0)
    last = {k: max(m.offset for m in messages if (m.kind, m.partition) == (k, 0)) for k in ("vibration", "frames")}
    nan = vibration.value[:-4] + np.array([np.nan], dtype="<f4").tobytes()
    gif = frame.value.replace(b'"encoding":"png"', b'"encoding":"gif"').replace(b'"encoding":"jpeg"',
                                                                              b'"encoding":"gif"')
    bad = [(b"garbage", "vibration"), (vibration.value[:-3], "vibration"), (nan, "vibration"), (gif, "frames")]
    out = list(messages)
    for number, (value, kind) in enumerate(bad, start=1):
        offset = last["vibration" if kind == "vibration" else "frames"] + number
        out.append(RecordedMessage(kind, 0, offset, vibration.timestamp_ms + number,  # type: ignore[arg-type]
                                   b"\xff\xfekey" if number == 1 else None, value))
    return out


def record(messages: list[RecordedMessage], directory: Path, finish: bool = True, **limits: int) -> RecordingWriter:
    ranges: dict[tuple[TopicKind, int], tuple[int, int]] = {}
    for m in messages:
        start, end = ranges.get((m.kind, m.partition), (m.offset, m.offset + 1))
        ranges[(m.kind, m.partition)] = (min(start, m.offset), max(end, m.offset + 1))
    writer = RecordingWriter(directory, {"test": True}, None, None, ranges, **limits)
    for message in sorted(messages, key=lambda m: (m.kind, m.partition, m.offset)):
        writer.add(message)
    if finish:
        writer.finish()
    return writer


def by_partition(messages: list[RecordedMessage]) -> dict[tuple[str, int], list[RecordedMessage]]:
    out: dict[tuple[str, int], list[RecordedMessage]] = {}
    for message in messages:
        out.setdefault((message.kind, message.partition), []).append(message)
    return {key: sorted(values, key=lambda m: m.offset) for key, values in out.items()}


def test_every_message_comes_back_byte_for_byte_in_replay_order(tmp_path: Path) -> None:
    plant = plant_messages()
    messages = with_bad_ones(plant)
    record(messages, tmp_path / "rec", part_messages=20)
    recording = Recording(tmp_path / "rec")
    recording.verify()
    back = list(recording.messages())
    assert recording.count() == len(back) == len(messages)
    assert by_partition(back) == by_partition(messages)  # each partition complete and in offset order
    originals = {m.value for m in plant}
    stamps = [m.timestamp_ms for m in back if m.value in originals]  # the plant's own: interleaved by time
    assert stamps == sorted(stamps)
    manifest = json.loads((tmp_path / "rec" / MANIFEST).read_text())
    keys = [(part["kind"], part["partition"]) for part in manifest["parts"]]
    assert manifest["complete"] and len(keys) > len(set(keys))  # partitions spread over several parts
    files = {name for part in manifest["parts"] for name in part["files"]}
    assert any(n.endswith(".npz") for n in files) and any(n.endswith(".tar") for n in files)
    first_rows = (tmp_path / "rec" / "maintenance-logs").glob("*.jsonl")
    for path in first_rows:  # logs are readable text records
        for line in path.read_text().splitlines():
            assert json.loads(line)["header"]["text"]


def test_the_samples_are_stored_as_columns_and_images_as_files(tmp_path: Path) -> None:
    messages = plant_messages(partitions=1)
    record(messages, tmp_path / "rec")
    npz = next((tmp_path / "rec" / "vibration").glob("*.npz"))
    with np.load(npz) as arrays:
        samples, bounds = arrays["samples"], arrays["bounds"]
    chunks = [decode(m.value) for m in messages if m.kind == "vibration"]
    assert samples.dtype == np.float32 and len(bounds) == len(chunks) + 1
    np.testing.assert_array_equal(samples[bounds[1]:bounds[2]], chunks[1].samples)  # type: ignore[union-attr]
    import tarfile

    with tarfile.open(next((tmp_path / "rec" / "frames").glob("*.tar"))) as tar:
        names = tar.getnames()
    assert len(names) == sum(m.kind == "frames" for m in messages) and names[0].endswith((".png", ".jpg"))


def test_a_time_range_selects_by_record_timestamp(tmp_path: Path) -> None:
    messages = plant_messages()
    record(messages, tmp_path / "rec")
    stamps = sorted(m.timestamp_ms for m in messages)
    start, end = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    chosen = list(Recording(tmp_path / "rec").messages(start * 1_000_000, end * 1_000_000))
    assert chosen and all(start <= m.timestamp_ms < end for m in chosen)
    assert len(chosen) == sum(start <= m.timestamp_ms < end for m in messages)


def test_an_interrupted_recording_resumes_after_its_last_part(tmp_path: Path) -> None:
    messages = plant_messages()
    directory = tmp_path / "rec"
    writer = record(messages[: len(messages) // 2], directory, finish=False, part_messages=10)
    written = {key: offset for key, offset in writer.offsets().items()}
    (directory / "vibration" / "p000-99999.jsonl.tmp").write_text("half a part")  # left by a crash
    with pytest.raises(RecordingError, match="incomplete"):
        Recording(directory).verify()
    resumed = RecordingWriter(directory, {"test": True}, None, None, {})
    assert resumed.offsets() == written and not (directory / "vibration" / "p000-99999.jsonl.tmp").exists()
    for message in sorted(messages, key=lambda m: (m.kind, m.partition, m.offset)):
        if message.offset >= resumed.offsets().get((message.kind, message.partition), 0):
            resumed.add(message)
    resumed.finish()
    recording = Recording(directory)
    recording.verify()
    assert by_partition(list(recording.messages())) == by_partition(messages)
    with pytest.raises(RecordingError, match="complete already"):
        RecordingWriter(directory, {}, None, None, {})


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_a_damaged_recording_fails_naming_the_file(tmp_path: Path, damage: str) -> None:
    record(plant_messages(), tmp_path / "rec")
    victim = next((tmp_path / "rec" / "vibration").glob("*.npz"))
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "delete":
        victim.unlink()
    else:
        victim = tmp_path / "rec" / MANIFEST
        victim.write_text(victim.read_text()[:-20])
    with pytest.raises(RecordingError, match=str(victim.name)) as caught:
        Recording(tmp_path / "rec").verify()
    message = str(caught.value)
    assert {"truncate": "truncated", "flip": "checksum", "delete": "missing", "manifest": "not valid JSON"}[damage] \
        in message
