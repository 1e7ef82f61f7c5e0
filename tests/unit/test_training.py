"""``fusewatch train``: a bundle learned from a recording, the same wherever the history was recorded, and used by
every new asset's log stage from its first entry on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors.sources.recording import RecordingWriter
from fusewatch.cli import main
from fusewatch.core.codec import encode
from fusewatch.core.errors import BundleError
from fusewatch.core.events import LogKind, MaintenanceLog
from fusewatch.core.history import RecordedMessage, TopicKind
from models.bundle import load_bundle, write_bundle
from models.text import TEXT_MODEL_FILE, LogSeverityModel
from streams.model_config import ModelConfig
from streams.pipeline import Pipeline

# work-order language the built-in lexicon does not know (it scores every one of these 0)
PHRASES: list[tuple[str, LogKind]] = [
    ("turbo whistling under load", "symptom"),
    ("greased pins and bushes", "inspection"),
    ("changed air filters", "note"),
    ("final drive chewed up, towed to workshop", "failure"),
    ("fitted new turbo", "repair"),
    ("boom cylinder drifting down", "symptom"),
]


def history(assets: int = 4, rounds: int = 12) -> list[MaintenanceLog]:
    entries = []
    for round_ in range(rounds):
        for index in range(assets):
            text, kind = PHRASES[(round_ + index) % len(PHRASES)]
            ts = (round_ * 3600 + index * 60) * 10**9
            entries.append(MaintenanceLog(asset_id=f"pump-{index:02d}", ts=ts, text=text, kind=kind))
    return entries


def record(directory: Path, entries: list[MaintenanceLog], partitions: int, reverse: bool = False) -> Path:
    """A recording of ``entries`` on the log topic, spread over ``partitions`` by asset, plus one bad message."""
    by_partition: dict[int, list[RecordedMessage]] = {p: [] for p in range(partitions)}
    for entry in entries:
        partition = int(entry.asset_id[-2:]) % partitions
        messages = by_partition[partition]
        messages.append(RecordedMessage("maintenance-logs", partition, len(messages), entry.ts // 10**6,
                                        entry.asset_id.encode(), encode(entry)))
    bad = by_partition[0]
    bad.append(RecordedMessage("maintenance-logs", 0, len(bad), 1, b"pump-00", b"FW\x01\x03garbage"))
    kind: TopicKind = "maintenance-logs"
    ranges = {(kind, p): (0, len(m)) for p, m in by_partition.items()}
    writer = RecordingWriter(directory, {"kind": "test"}, None, None, ranges)
    for partition in sorted(by_partition, reverse=reverse):
        for message in by_partition[partition]:
            writer.add(message)
    writer.finish()
    return directory


def test_train_writes_a_bundle_whose_text_model_learned_every_labelled_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = history()
    source = record(tmp_path / "rec", entries, partitions=2)
    out = tmp_path / "bundles" / "t1"
    assert main(["train", "--source", str(source), "--out", str(out), "--version", "t1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"{len(entries)} log entries, {len(entries)} labelled" in printed and "1 not decodable" in printed
    bundle = load_bundle(out)
    origin = bundle.manifest["made_from"]
    assert origin["log_entries"] == len(entries) and origin["invalid_messages"] == 1
    assert origin["source"].startswith(f"recording {source}")
    model = LogSeverityModel.from_json(bundle.json(TEXT_MODEL_FILE))
    symptoms = sum(kind in ("symptom", "failure") for _, kind in PHRASES) * len(entries) // len(PHRASES)
    assert (model.positives, model.negatives) == (symptoms, len(entries) - symptoms)
    assert main(["train", "--source", str(source), "--out", str(out), "--version", "t2", "--no-progress"]) == 2
    assert "exists already" in capsys.readouterr().err


def test_the_same_history_gives_the_same_bundle_however_it_was_recorded(tmp_path: Path) -> None:
    entries = history()
    digests = []
    for name, partitions, reverse in (("one", 1, False), ("three", 3, True)):
        source = record(tmp_path / f"rec-{name}", entries, partitions, reverse)
        out = tmp_path / f"bundle-{name}"
        assert main(["train", "--source", str(source), "--out", str(out), "--version", "v", "--no-progress"]) == 0
        digests.append(load_bundle(out).manifest["files"])
    assert digests[0] == digests[1]


def test_a_new_asset_judges_its_first_entry_with_the_fleets_experience(tmp_path: Path) -> None:
    source = record(tmp_path / "rec", history(), partitions=2)
    out = tmp_path / "bundle"
    assert main(["train", "--source", str(source), "--out", str(out), "--version", "v", "--no-progress"]) == 0
    alone, fleet = Pipeline(ModelConfig()), Pipeline(ModelConfig(bundle=out))
    logs_alone, logs_fleet = alone.stages[2], fleet.stages[2]
    assert logs_alone.name == logs_fleet.name == "logs"
    first = "turbo whistling again, drifting too"  # a brand-new asset's first entry
    new_alone, new_fleet = logs_alone.new_state(0), logs_fleet.new_state(0)
    assert new_alone.model.score_one(first) == 0.0  # the lexicon alone: nothing it knows
    assert new_fleet.model.score_one(first) > 0.3 > new_fleet.model.score_one("greased pins, changed filters")
    assert new_fleet.model is logs_fleet.new_state(1).model  # one fleet model, learning from every asset


def test_a_malformed_text_model_is_a_bundle_error_naming_it(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", "1", {TEXT_MODEL_FILE: {"format": "other"}})
    with pytest.raises(BundleError, match=re.escape("text-model.json: format 'other', expected 'log-severity-1'")):
        Pipeline(ModelConfig(bundle=tmp_path / "b"))
