"""The simulated run's settings: :class:`SimulatorConfig`, checked field by field, and the assets' sampling stagger.

>>> config = SimulatorConfig(assets=2, days=0.01)
>>> config.total_steps, config.n_samples
(14, 25600)
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from fusewatch.core.errors import ConfigError
from fusewatch.core.events import MAX_SAMPLES
from fusewatch.core.timeutil import NS_PER_S, parse_time


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that defines a simulated run; the same config gives byte-identical events."""

    assets: int = 6
    days: float = 14.0
    seed: int = 0
    start_ns: int = parse_time("2026-01-05T00:00:00Z")
    snapshot_interval_s: float = 60.0
    snapshot_seconds: float = 1.0
    sample_rate_hz: float = 25_600.0
    frame_interval_s: float = 60.0
    frame_size: int = 128
    healthy_fraction: float = 1.0 / 3.0
    fault_free_days: float = 2.0
    latest_onset_days: float | None = None
    """When set, every fault starts between ``fault_free_days`` and this many days after the start (a new
    machine's first hours: ``fault_free_days=2/24, latest_onset_days=1``); ``None``: wherever the run allows."""
    min_fault_days: float = 2.0
    max_fault_days: float = 6.0
    min_downtime_hours: float = 4.0
    max_downtime_hours: float = 12.0
    severity_exponent: float = 2.0
    occlusion_probability: float = 0.003
    jpeg_quality: int = 90
    unlabeled_log_fraction: float = 0.2
    stagger_s: float = 0.0
    """Spread the assets' sampling phases over this many seconds: each asset's snapshot and frame come
    :func:`stagger_offset_ns` later in every step (0: all assets sample at the same instants)."""

    def __post_init__(self) -> None:
        _integer("assets", self.assets, 1, 9_999)
        _integer("seed", self.seed, 0, 2**63 - 1)
        _integer("start_ns", self.start_ns, 0, 2**62)
        _integer("frame_size", self.frame_size, 16, 2048)
        _integer("jpeg_quality", self.jpeg_quality, 1, 95)
        _number("days", self.days, 0.0, 3650.0, low_open=True)
        _number("snapshot_interval_s", self.snapshot_interval_s, 0.0, 86_400.0, low_open=True)
        _number("snapshot_seconds", self.snapshot_seconds, 0.0, self.snapshot_interval_s, low_open=True)
        _number("sample_rate_hz", self.sample_rate_hz, 2_000.0, 1_000_000.0)
        _number("frame_interval_s", self.frame_interval_s, 0.0, 86_400.0, low_open=True)
        for name in ("healthy_fraction", "occlusion_probability", "unlabeled_log_fraction"):
            _number(name, getattr(self, name), 0.0, 1.0)
        _number("fault_free_days", self.fault_free_days, 0.0, 3650.0)
        if self.latest_onset_days is not None:
            _number("latest_onset_days", self.latest_onset_days, self.fault_free_days, self.days, low_open=True)
        _number("min_fault_days", self.min_fault_days, 0.0, 3650.0, low_open=True)
        _number("max_fault_days", self.max_fault_days, self.min_fault_days, 3650.0)
        _number("min_downtime_hours", self.min_downtime_hours, 0.0, 1000.0, low_open=True)
        _number("max_downtime_hours", self.max_downtime_hours, self.min_downtime_hours, 1000.0)
        _number("severity_exponent", self.severity_exponent, 0.0, 10.0, low_open=True)
        _number("stagger_s", self.stagger_s, 0.0, self.snapshot_interval_s / 2)
        if self.stagger_s > 0 and self.frame_interval_s != self.snapshot_interval_s:
            raise ConfigError("stagger_s: needs frame_interval_s == snapshot_interval_s (one frame per step)")
        if not 1 <= self.n_samples <= MAX_SAMPLES:
            raise ConfigError(f"snapshot_seconds: {self.n_samples} samples per snapshot, allowed 1..{MAX_SAMPLES}")
        if self.days * 86_400.0 < self.snapshot_interval_s:
            raise ConfigError("days: the run is shorter than one snapshot interval")

    @property
    def n_samples(self) -> int:
        """Samples per vibration snapshot."""
        return round(self.snapshot_seconds * self.sample_rate_hz)

    @property
    def total_steps(self) -> int:
        """Snapshot intervals in the run."""
        return int(self.days * 86_400.0 / self.snapshot_interval_s + 1e-9)

    @property
    def step_ns(self) -> int:
        """Length of one snapshot interval in nanoseconds."""
        return round(self.snapshot_interval_s * NS_PER_S)

    @property
    def end_ns(self) -> int:
        """End of the run (exclusive)."""
        return self.start_ns + self.total_steps * self.step_ns


def stagger_offset_ns(asset_id: str, stagger_s: float) -> int:
    """How much later than the step's nominal instants ``asset_id`` samples: a whole number of milliseconds in
    ``[0, stagger_s)``, the same for an asset id in every run (a CRC-32 of the id).

    >>> stagger_offset_ns("pump-01", 0.0), stagger_offset_ns("pump-01", 30.0) == stagger_offset_ns("pump-01", 30.0)
    (0, True)
    """
    stagger_ms = round(stagger_s * 1000)
    return (zlib.crc32(asset_id.encode()) * stagger_ms >> 32) * 1_000_000


def _integer(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name}: must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be in [{low}, {high}], got {value}")


def _number(name: str, value: object, low: float, high: float, low_open: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        raise ConfigError(f"{name}: must be in {'(' if low_open else '['}{low:g}, {high:g}], got {value!r}")
