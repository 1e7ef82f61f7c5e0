"""`fusewatch import`: readers of every format on real files written here, the problem report, the targets."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat, wavfile

from connectors.ingest.files.images import DATE_TIME_ORIGINAL, EXIF_IFD, OFFSET_TIME_ORIGINAL, SUBSEC_TIME_ORIGINAL
from connectors.ingest.files.logs import LogOptions, LogReader, parse_kind_map, parse_mapping
from connectors.ingest.files.pipeline import run_import
from connectors.ingest.files.problems import ImportProblemError, ProblemReport
from connectors.ingest.files.targets import RecordingTarget, partition_of
from connectors.ingest.files.timing import NamePattern, TimeFormat
from connectors.ingest.files.vibration import VibrationOptions, VibrationReader
from connectors.sources.recording import Recording
from fusewatch.commands.import_files import register
from fusewatch.core.codec import InputEvent, decode
from fusewatch.core.errors import ConfigError, RecordingError
from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk, make_event
from fusewatch.core.timeutil import NS_PER_S, parse_time
from fusewatch.evaluation.labels import read_labels_csv

T0 = parse_time("2026-01-05T06:00:00Z")


def cli(*argv: str | Path) -> int:
    """Run ``fusewatch import ...`` through the command's own parser."""
    parser = argparse.ArgumentParser(prog="fusewatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["import", "--help"] if not argv else ["import", *map(str, argv)])
    status: int = args.run(args)
    return status


def events_of(directory: Path) -> list[tuple[int, int, InputEvent]]:
    """(partition, offset, event) of every message of a recording, after verifying it."""
    recording = Recording(directory)
    recording.verify()
    return [(m.partition, m.offset, decode(m.value)) for m in recording.messages()]


def chunks_of(directory: Path) -> list[VibrationChunk]:
    return [event for _, _, event in events_of(directory) if isinstance(event, VibrationChunk)]


# -- vibration ---------------------------------------------------------------------------------------------------
def test_wav_time_from_the_file_name_cut_into_snapshots(tmp_path: Path) -> None:
    rate = 1000
    pcm = (np.sin(np.arange(2500) / 7.0) * 16000).astype(np.int16)
    wavfile.write(tmp_path / "pump-01_20260105T060000.wav", rate, pcm)
    status = cli("vibration", tmp_path / "pump-01_20260105T060000.wav", "--time-pattern",
                 "{asset_id}_%Y%m%dT%H%M%S.wav", "--unit", "m/s^2", "--out", tmp_path / "rec", "--no-progress")
    assert status == 0
    chunks = chunks_of(tmp_path / "rec")
    assert [c.samples.size for c in chunks] == [1000, 1000, 500]
    assert [c.ts - T0 for c in chunks] == [0, NS_PER_S, 2 * NS_PER_S]
    assert {(c.asset_id, c.sensor_id, c.unit, c.sample_rate_hz) for c in chunks} == {
        ("pump-01", "accel", "m/s^2", 1000.0)}
    np.testing.assert_allclose(np.concatenate([c.samples for c in chunks]), pcm / 32768.0, rtol=1e-6)


def test_edge_features_import_each_snapshots_feature_set_with_the_plants_bearing(tmp_path: Path) -> None:
    from connectors.ingest.edge import EdgeFeatures
    from fusewatch.core.events import VibrationFeatureSet
    from fusewatch.core.plant import load_plant

    plant = tmp_path / "plant.toml"
    plant.write_text('[[assets]]\nid = "pump-01"\nkind = "pump"\n'
                     'bearing = { shaft_hz = 29.5, bpfo_hz = 105.2, bpfi_hz = 160.1, bsf_hz = 68.3, ftf_hz = 11.7 }\n')
    samples = np.random.default_rng(3).normal(size=3 * 25600).astype(np.float32)
    np.save(tmp_path / "pump.npy", samples)
    common = ("vibration", tmp_path / "pump.npy", "--asset", "pump-01", "--sample-rate", "25600", "--start",
              "2026-01-05T00:00:00Z", "--no-progress")
    assert cli(*common, "--out", tmp_path / "waves") == 0
    assert cli(*common, "--plant", plant, "--edge-features", "--out", tmp_path / "edge") == 0
    waves = chunks_of(tmp_path / "waves")
    sets = [event for _, _, event in events_of(tmp_path / "edge")]
    assert len(sets) == len(waves) == 3 and all(isinstance(s, VibrationFeatureSet) for s in sets)
    registry = load_plant(plant).registry()
    expected = [EdgeFeatures(registry.bearings).convert(chunk) for chunk in waves]
    assert [s.features for s in sets] == [e.features for e in expected]  # type: ignore[union-attr]
    assert "env_bpfo" in sets[0].features  # type: ignore[union-attr]  # the plant's bearing was used
    with pytest.raises(ConfigError, match="--asset pump-02: not an asset of"):
        cli("vibration", tmp_path / "pump.npy", "--asset", "pump-02", "--sample-rate", "25600", "--start",
            "2026-01-05T00:00:00Z", "--plant", plant, "--out", tmp_path / "x", "--no-progress")


def test_npy_with_start_sample_rate_every_and_the_next_file_following_on(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(600, dtype=np.float32))
    np.save(tmp_path / "b.npy", np.stack([np.zeros(100), np.full(100, 2.0)], axis=1))
    report = ProblemReport()
    options = VibrationOptions(asset_id="fan-3", sample_rate_hz=10.0, start_ns=T0, snapshot_s=1.0, every_s=20.0,
                               channel=1)
    reader = VibrationReader(options, report)
    chunks = list(reader.read([tmp_path / "a.npy"]))
    assert [(c.ts - T0) // NS_PER_S for c in chunks] == [0, 20, 40]
    assert chunks[1].samples.tolist() == list(range(200, 210))
    assert report.count == 0  # a.npy is 1-D: --channel applies to matrices only
    follow = list(reader.read([tmp_path / "b.npy"]))
    assert (follow[0].ts - T0) // NS_PER_S == 60 and follow[0].samples.tolist() == [2.0] * 10


def test_csv_with_a_time_column_reports_a_bad_row_and_goes_on(tmp_path: Path) -> None:
    rows = ["time,accel,temp"]
    for i in range(300):
        cell = "oops" if i == 150 else f"{np.sin(i / 5):.6f}"
        rows.append(f"{T0 // 1_000_000 + i * 10},{cell},40.0")
    path = tmp_path / "log.csv"
    path.write_text("\n".join(rows) + "\n")
    status = cli("vibration", path, "--asset", "fan-3", "--time-column", "time", "--time-format", "epoch-ms",
                 "--column", "de=accel", "--out", tmp_path / "rec", "--problems", tmp_path / "problems.txt",
                 "--no-progress")
    assert status == 1  # imported, with a row skipped
    assert (tmp_path / "problems.txt").read_text() == f"{path}:152:2: column 'accel': not a number: 'oops'\n"
    chunks = chunks_of(tmp_path / "rec")
    assert sum(c.samples.size for c in chunks) == 299
    assert all(c.sensor_id == "de" and c.sample_rate_hz == pytest.approx(100.0) for c in chunks)
    assert [(c.ts - T0) // 10_000_000 for c in chunks] == [0, 100, 151, 251]  # the bad row ends its snapshot
    assert chunks[2].samples[0] == pytest.approx(np.sin(151 / 5), abs=1e-6)


def test_csv_strict_stops_at_the_first_problem_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("accel\n0.1\n0.2\nnan\n0.3\n")
    with pytest.raises(ImportProblemError, match=r"x.csv:4:1: column 'accel': not a finite number: 'nan' \(--strict"):
        cli("vibration", path, "--asset", "p", "--sample-rate", "2", "--start", "2026-01-05T06:00:00Z", "--strict",
            "--out", tmp_path / "rec", "--no-progress")
    assert not (tmp_path / "rec" / "manifest.json").exists()
    # without --strict the sample's time is kept: the next snapshot starts where it belongs
    assert cli("vibration", path, "--asset", "p", "--sample-rate", "2", "--start", "2026-01-05T06:00:00Z",
               "--out", tmp_path / "rec", "--no-progress") == 1
    assert [(c.ts - T0, c.samples.tolist()) for c in chunks_of(tmp_path / "rec")] == [
        (0, pytest.approx([0.1, 0.2])), (NS_PER_S + NS_PER_S // 2, pytest.approx([0.3]))]


def test_mat_v5_and_v73(tmp_path: Path) -> None:
    signal = np.sin(np.arange(3000) / 3.0)
    savemat(tmp_path / "v5.mat", {"X097_DE_time": signal[:, None], "X097RPM": np.array([[1796]])})
    # MATLAB v7.3 is HDF5 behind a 512-byte MATLAB header; an N x 2 matrix is stored transposed, as (2, N)
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as mat:
        mat.create_dataset("acc", data=np.stack([signal, -signal]))
        mat["acc"].attrs["MATLAB_class"] = np.bytes_("double")
        mat.create_dataset("rpm", data=np.array([[1796.0]]))
    with open(tmp_path / "v73.mat", "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  5 06:00:00 2026 HDF5 schema 1.00 .")
    report = ProblemReport()
    options = VibrationOptions(asset_id="cwru", sample_rate_hz=1000.0, start_ns=T0, channel=1)
    chunks = list(VibrationReader(options, report).read([tmp_path / "v5.mat", tmp_path / "v73.mat"]))
    assert report.count == 0, report.lines()
    v5, v73 = chunks[:3], chunks[3:]
    np.testing.assert_allclose(np.concatenate([c.samples for c in v5]), signal, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([c.samples for c in v73]), -signal, rtol=1e-6)
    assert v73[0].ts - T0 == 3 * NS_PER_S  # the second file follows the first
    wrong = VibrationOptions(asset_id="cwru", sample_rate_hz=1000.0, start_ns=T0, variable="nope")
    assert list(VibrationReader(wrong, report).read([tmp_path / "v5.mat"])) == []
    assert "no numeric variable 'nope'; numeric variables: X097_DE_time" in report.lines()[0]


def test_unreadable_and_unmatched_files_are_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.wav").write_bytes(b"RIFF....nonsense")
    (tmp_path / "other.npy").write_bytes(b"not numpy")
    report = ProblemReport()
    pattern = NamePattern("{asset_id}.%Y%m%d.npy")
    reader = VibrationReader(VibrationOptions(name_pattern=pattern, sample_rate_hz=10.0), report)
    assert list(reader.read([tmp_path / "broken.wav", tmp_path / "other.npy"])) == []
    assert [str(p) for p in report] == [
        f"{tmp_path / 'broken.wav'}: file name does not match --time-pattern '{{asset_id}}.%Y%m%d.npy'",
        f"{tmp_path / 'other.npy'}: file name does not match --time-pattern '{{asset_id}}.%Y%m%d.npy'"]
    report = ProblemReport()
    reader = VibrationReader(VibrationOptions(asset_id="p", start_ns=T0, sample_rate_hz=10.0), report)
    assert list(reader.read([tmp_path / "broken.wav"])) == []
    assert report.lines()[0].startswith(f"{tmp_path / 'broken.wav'}: cannot be read as WAV:")


# -- images ------------------------------------------------------------------------------------------------------
def _image(path: Path, fmt: str, when: str | None, offset: str | None = None, subsec: str | None = None) -> bytes:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[271] = "Axis"  # Make: Pillow writes the EXIF sub-IFD only beside a tag of the main IFD
    if when is not None:
        details = exif.get_ifd(EXIF_IFD)
        details[DATE_TIME_ORIGINAL] = when
        if offset:
            details[OFFSET_TIME_ORIGINAL] = offset
        if subsec:
            details[SUBSEC_TIME_ORIGINAL] = subsec
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, exif=exif)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_images_time_from_exif_or_the_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    jpeg = _image(folder / "a.jpg", "JPEG", "2026:01:05 07:00:00", offset="+01:00", subsec="25")
    png = _image(folder / "b.png", "PNG", "2026:01:05 06:00:05")
    _image(folder / "c.jpg", "JPEG", None)
    (folder / "d.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert cli("images", folder, "--asset", "pump-01", "--camera-id", "top", "--out", tmp_path / "rec",
               "--problems", tmp_path / "p.txt", "--no-progress") == 1
    frames = [e for _, _, e in events_of(tmp_path / "rec") if isinstance(e, CameraFrame)]
    assert [(f.ts - T0, f.encoding, f.width, f.height, f.camera_id) for f in frames] == [
        (250_000_000, "jpeg", 32, 24, "top"), (5 * NS_PER_S, "png", 32, 24, "top")]
    assert frames[0].data == jpeg and frames[1].data == png  # the bytes as they were
    problems = (tmp_path / "p.txt").read_text().splitlines()
    assert problems[0] == f"{folder / 'c.jpg'}: no EXIF DateTimeOriginal: use --time-from name with a --time-pattern"
    assert problems[1].startswith(f"{folder / 'd.png'}: cannot be read as an image")
    named = tmp_path / "named"
    named.mkdir()
    _image(named / "pump-02-side-20260105-060010.png", "PNG", None)
    assert cli("images", named, "--time-pattern", "{asset_id}-{camera_id}-%Y%m%d-%H%M%S.png",
               "--timezone", "Europe/Berlin", "--out", tmp_path / "rec2", "--no-progress") == 0
    (frame,) = [e for _, _, e in events_of(tmp_path / "rec2")]
    assert isinstance(frame, CameraFrame)
    assert (frame.asset_id, frame.camera_id, frame.ts - T0) == ("pump-02", "side", 10 * NS_PER_S - 3600 * NS_PER_S)


# -- logs and labels ---------------------------------------------------------------------------------------------
CMMS = """\
WO,Machine,Date,Description,Type,Tech
1,P-101,05/01/2026 08:00,Bearing noise on drive end,Inspection,Ann
2,P-101,06/01/2026 09:30,"Pump seized, replaced bearing",Breakdown,Bob
3,P-102,yesterday,Oil top-up,PM,Ann
4,P-102,07/01/2026 10:00,Greased coupling,Lubrication,
5,P-102,07/01/2026 11:00,   ,CM,Ann
"""


def test_cmms_export_with_a_mapping_and_the_kind_table(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(CMMS)
    report = ProblemReport()
    options = LogOptions(mapping=parse_mapping("asset=Machine,time=Date,text=Description,kind=Type,author=Tech"),
                         time_format=TimeFormat("%d/%m/%Y %H:%M", "Europe/Berlin"), asset_prefix="plant1-")
    entries = list(LogReader(options, report).read([path]))
    assert [(e.asset_id, e.ts, e.kind, e.author, e.text) for e in entries] == [
        ("plant1-P-101", parse_time("2026-01-05T07:00:00Z"), "inspection", "Ann", "Bearing noise on drive end"),
        ("plant1-P-101", parse_time("2026-01-06T08:30:00Z"), "failure", "Bob", "Pump seized, replaced bearing"),
        ("plant1-P-102", parse_time("2026-01-07T09:00:00Z"), None, None, "Greased coupling")]
    assert report.lines() == [
        f"{path}:4:3: column 'Date' (time): does not match the time format '%d/%m/%Y %H:%M': 'yesterday'",
        f"{path}:6:4: column 'Description' (text): empty"]
    strict_kinds = LogOptions(mapping=options.mapping, time_format=options.time_format, unknown_kind="error",
                              kind_map=parse_kind_map("Lubrication=note"))
    report = ProblemReport()
    assert [e.kind for e in LogReader(strict_kinds, report).read([path])] == ["inspection", "failure", "note"]
    with pytest.raises(ConfigError, match="--kind-map: 'PM01=broken'"):
        parse_kind_map("PM01=broken")
    with pytest.raises(ConfigError, match="--map: text missing"):
        LogReader(LogOptions(mapping=parse_mapping("asset=Machine,time=Date")), report)


def test_labels_into_a_recording_are_what_backtest_reads(tmp_path: Path) -> None:
    labels = tmp_path / "faults.csv"
    labels.write_text("asset_id,fault_start,failure\npump-01,2026-01-05T06:00:00Z,2026-01-06T00:00:00Z\n"
                      "pump-02,,2026-01-07T00:00:00Z\npump-03,someday,\n")
    assert cli("labels", labels, "--out", tmp_path / "rec", "--as-logs", "--no-progress") == 1
    events = read_labels_csv(tmp_path / "rec" / "labels.csv", 3600 * NS_PER_S)
    assert [(e.asset_id, e.start_known, e.failure) for e in events] == [
        ("pump-01", True, parse_time("2026-01-06T00:00:00Z")), ("pump-02", False, parse_time("2026-01-07T00:00:00Z"))]
    logs = [e for _, _, e in events_of(tmp_path / "rec")]
    assert [(e.asset_id, e.kind) for e in logs if isinstance(e, MaintenanceLog)] == [("pump-01", "failure"),
                                                                                   ("pump-02", "failure")]
    # importing again adds nothing twice
    assert cli("labels", labels, "--out", tmp_path / "rec", "--no-progress") == 1
    assert len(read_labels_csv(tmp_path / "rec" / "labels.csv", 3600 * NS_PER_S)) == 2


# -- targets and the pipeline ------------------------------------------------------------------------------------
def _log(asset: str, seconds: int, text: str = "noted") -> MaintenanceLog:
    return make_event(MaintenanceLog, asset_id=asset, ts=T0 + seconds * NS_PER_S, text=text)


def test_recording_in_time_order_per_partition_merged_with_a_later_import(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    assets = [f"pump-{i:02d}" for i in range(8)]
    first = [_log(asset, 100 - i) for i, asset in enumerate(assets)]  # arrives in reverse time order
    run_import(first, RecordingTarget(rec, 3, {"import": "test"}), ProblemReport(), progress=False)
    (rec / "labels.csv").write_text("asset_id,fault_start,failure\n")
    chunk = make_event(VibrationChunk, asset_id="pump-00", sensor_id="de", ts=T0 + 50 * NS_PER_S,
                       sample_rate_hz=4.0, unit="g", samples=np.ones(4, dtype=np.float32))
    summary = run_import([_log("pump-03", 10), chunk], RecordingTarget(rec, 3, {"import": "test"}), ProblemReport(),
                         progress=False)
    assert summary.kept == 8 and summary.delivered["merged"] is True
    assert (rec / "labels.csv").exists() and not (rec.parent / "rec.importing").exists()
    manifest = json.loads((rec / "manifest.json").read_text())
    assert manifest["complete"] and manifest["messages"] == 10
    assert {(r["kind"], r["partition"]) for r in manifest["ranges"]} == {
        (k, p) for k in ("vibration", "frames", "maintenance-logs") for p in range(3)}
    seen: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for partition, offset, event in events_of(rec):
        assert partition == partition_of(event.asset_id.encode(), 3)
        kind = "vibration" if isinstance(event, VibrationChunk) else "logs"
        seen.setdefault((kind, partition), []).append((offset, event.ts))
    for rows in seen.values():
        assert [offset for offset, _ in rows] == list(range(len(rows)))
        assert [ts for _, ts in rows] == sorted(ts for _, ts in rows)
    with pytest.raises(RecordingError, match=r"has 3 partitions per topic, \[kafka\] partitions is 6"):
        RecordingTarget(rec, 6, {})  # a merge keeps the recording's partitioning


def test_transform_is_applied_before_the_target(tmp_path: Path) -> None:
    def shout(event: InputEvent) -> InputEvent:
        assert isinstance(event, MaintenanceLog)
        return event.model_copy(update={"text": event.text.upper()})

    run_import([_log("p", 1, "quiet")], RecordingTarget(tmp_path / "rec", 1, {}), ProblemReport(), shout, False)
    (_, _, entry), = events_of(tmp_path / "rec")
    assert isinstance(entry, MaintenanceLog) and entry.text == "QUIET"


def test_help_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    for kind in ("", "vibration", "images", "logs", "labels"):
        with pytest.raises(SystemExit):
            cli(*([kind, "--help"] if kind else []))
        assert "fusewatch import" in capsys.readouterr().out
