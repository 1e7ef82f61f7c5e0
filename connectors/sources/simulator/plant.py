"""The simulated plant: assets, their fault schedule, and the time-ordered stream of their input events.

>>> plant = PlantSimulator(SimulatorConfig(assets=2, days=0.01, seed=7))
>>> plant.asset_ids, plant.total_steps
(['pump-01', 'motor-02'], 14)
>>> step = next(plant.steps())
>>> [(type(e).__name__, e.asset_id) for e in step]
[('VibrationChunk', 'pump-01'), ('VibrationChunk', 'motor-02'), ('CameraFrame', 'pump-01'), ('CameraFrame', 'motor-02')]
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from connectors.sources.simulator.camera import CameraRenderer, Scene, make_scene
from connectors.sources.simulator.logs import LogEntry, plan_logs
from connectors.sources.simulator.vibration import (
    VibrationProfile,
    VibrationSynth,
    load_schedule,
    make_profile,
)
from fusewatch.core.assets import AssetInfo, AssetRegistry, BearingKinematics
from fusewatch.core.codec import InputEvent
from fusewatch.core.errors import ConfigError
from fusewatch.core.events import (
    MAX_SAMPLES,
    CameraFrame,
    FaultType,
    GroundTruth,
    MaintenanceLog,
    Modality,
    VibrationChunk,
)
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_S, parse_time

AssetKind = Literal["pump", "motor"]
# purposes of the random streams: np.random.default_rng([seed, asset index, purpose])
PLAN, PROFILE, LOAD, VIBRATION, SCENE, CAMERA, LOGS, SCHEDULE = range(8)
FIRST_MODALITY: dict[FaultType, Modality] = {
    "bearing_outer": "vibration",
    "bearing_inner": "vibration",
    "leak": "camera",
    "winding": "logs",
}
_FAULT_OPTIONS: dict[AssetKind, tuple[FaultType, ...]] = {
    "pump": ("leak", "bearing_outer", "bearing_inner"),  # the kind's own fault first: it wins ties
    "motor": ("winding", "bearing_inner", "bearing_outer"),
}
NDE_GAIN = 0.7
"""Transmission of non-drive-end bearing impacts to the drive-end accelerometer."""


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


@dataclass(frozen=True)
class FaultPlan:
    """One fault of one asset: severity ``((t - onset) / (failure - onset)) ** exponent`` until the failure."""

    fault_type: FaultType
    location: str
    onset_ns: int
    failure_ns: int
    restart_ns: int
    exponent: float = 2.0

    def severity(self, ts_ns: int) -> float:
        """Severity in [0, 1] at ``ts_ns``; 0 before the onset and once the asset has been repaired."""
        if not self.onset_ns <= ts_ns < self.failure_ns:
            return 0.0
        return float(((ts_ns - self.onset_ns) / (self.failure_ns - self.onset_ns)) ** self.exponent)

    def time_at(self, severity: float) -> int:
        """First time at which the severity reaches ``severity``."""
        return self.onset_ns + int((self.failure_ns - self.onset_ns) * severity ** (1.0 / self.exponent))

    def is_down(self, ts_ns: int) -> bool:
        """Whether the asset is stopped (between failure and restart) at ``ts_ns``."""
        return self.failure_ns <= ts_ns < self.restart_ns


def asset_kind(index: int) -> AssetKind:
    """Assets alternate: pump-01, motor-02, pump-03, ..."""
    return "pump" if index % 2 == 0 else "motor"


def assign_fault_types(config: SimulatorConfig) -> list[FaultType | None]:
    """Choose the healthy assets (about ``healthy_fraction`` of each kind) and the fault type of the others.

    A plant-level draw from ``default_rng([seed, PLAN])``, balanced so that the fault types are spread evenly
    (six assets show all four types). No faults when ``days < fault_free_days + 1``.
    """
    if config.days < config.fault_free_days + 1.0:
        return [None] * config.assets
    rng = np.random.default_rng([config.seed, PLAN])
    healthy: set[int] = set()
    for kind in ("pump", "motor"):
        members = [i for i in range(config.assets) if asset_kind(i) == kind]
        count = math.floor(len(members) * config.healthy_fraction + 0.5)
        healthy.update(int(i) for i in rng.permutation(members)[:count])
    used: dict[FaultType, int] = dict.fromkeys(FIRST_MODALITY, 0)
    types: list[FaultType | None] = [None] * config.assets
    for i in rng.permutation(config.assets).tolist():
        if i in healthy:
            continue
        options = _FAULT_OPTIONS[asset_kind(i)]
        ranks = rng.random(len(options))
        choice = min(range(len(options)), key=lambda k: (used[options[k]], k > 0, ranks[k]))
        types[i] = options[choice]
        used[options[choice]] += 1
    return types


def schedule_fault(config: SimulatorConfig, index: int, fault_type: FaultType) -> FaultPlan:
    """Draw onset, failure and restart of ``fault_type`` on asset ``index`` from ``[seed, index, SCHEDULE]``.

    Onset no earlier than ``fault_free_days`` after the start; failure ``min_fault_days``-``max_fault_days``
    later (shrunk to fit short runs); down for ``min_downtime_hours``-``max_downtime_hours``; back at least
    one hour before the end of the run.
    """
    rng = np.random.default_rng([config.seed, index, SCHEDULE])
    downtime = int(rng.uniform(config.min_downtime_hours, config.max_downtime_hours) * NS_PER_HOUR)
    earliest = config.start_ns + int(config.fault_free_days * NS_PER_DAY)
    available = config.end_ns - NS_PER_HOUR - downtime - earliest
    longest = min(int(config.max_fault_days * NS_PER_DAY), available)
    shortest = min(int(config.min_fault_days * NS_PER_DAY), longest // 2)
    duration = int(rng.uniform(shortest, longest))
    onset = earliest + int(rng.uniform(0, available - duration))
    onset -= onset % NS_PER_S
    failure = onset + duration - duration % NS_PER_S
    if fault_type.startswith("bearing"):
        location = "DE" if rng.random() < 0.6 else "NDE"
    else:
        location = "seal" if fault_type == "leak" else "winding"
    restart = failure + downtime - downtime % NS_PER_S
    return FaultPlan(fault_type, location, onset, failure, restart, config.severity_exponent)


@dataclass(frozen=True)
class _Asset:
    index: int
    asset_id: str
    kind: AssetKind
    fault: FaultPlan | None
    profile: VibrationProfile
    scene: Scene
    logs: tuple[LogEntry, ...]
    log_events: tuple[MaintenanceLog, ...]


class PlantSimulator:
    """A deterministic plant of pumps and motors emitting vibration snapshots, camera frames and logs.

    Parameters
    ----------
    config
        The run. Every random stream is ``np.random.default_rng([seed, asset index, purpose])``, so the events
        of one asset do not depend on the others (only the plant-level choice of fault types does).
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.total_steps = config.total_steps
        self._assets = [self._build_asset(i, fault) for i, fault in enumerate(assign_fault_types(config))]
        self.asset_ids = [a.asset_id for a in self._assets]
        self._by_id = {a.asset_id: a for a in self._assets}
        self.ground_truth = [_ground_truth(a) for a in self._assets]

    def _build_asset(self, index: int, fault_type: FaultType | None) -> _Asset:
        cfg = self.config
        kind = asset_kind(index)
        asset_id = f"{kind}-{index + 1:02d}"
        fault = schedule_fault(cfg, index, fault_type) if fault_type else None
        logs = plan_logs(
            np.random.default_rng([cfg.seed, index, LOGS]),
            number=index + 1,
            kind=kind,
            start_ns=cfg.start_ns,
            end_ns=cfg.end_ns,
            fault=fault,
            unlabeled_fraction=cfg.unlabeled_log_fraction,
        )
        return _Asset(
            index=index,
            asset_id=asset_id,
            kind=kind,
            fault=fault,
            profile=make_profile(np.random.default_rng([cfg.seed, index, PROFILE]), kind, cfg.sample_rate_hz),
            scene=make_scene(np.random.default_rng([cfg.seed, index, SCENE]), kind, cfg.frame_size),
            logs=tuple(logs),
            log_events=tuple(entry.to_event(asset_id) for entry in logs),
        )

    def kinematics(self, asset_id: str) -> BearingKinematics:
        """Bearing fault frequencies of ``asset_id`` at its nominal shaft speed."""
        return self._asset(asset_id).profile.kinematics

    def asset_registry(self) -> AssetRegistry:
        """The simulated assets with their kinds and bearing frequencies, as a worker's registry."""
        infos = {}
        for asset in self._assets:
            k = self.kinematics(asset.asset_id)
            infos[asset.asset_id] = AssetInfo(asset.kind, k)
        return AssetRegistry(infos)

    def severity(self, asset_id: str, ts_ns: int) -> float:
        """True fault severity of ``asset_id`` at ``ts_ns`` (0 when healthy)."""
        fault = self._asset(asset_id).fault
        return fault.severity(ts_ns) if fault else 0.0

    def fault_plan(self, asset_id: str) -> FaultPlan | None:
        """The fault schedule of ``asset_id`` (with the bearing location), or ``None``."""
        return self._asset(asset_id).fault

    def log_entries(self, asset_id: str) -> list[LogEntry]:
        """The planned log entries of ``asset_id`` with their true kind."""
        return list(self._asset(asset_id).logs)

    def _asset(self, asset_id: str) -> _Asset:
        try:
            return self._by_id[asset_id]
        except KeyError:
            raise KeyError(f"unknown asset {asset_id!r}; known: {', '.join(self.asset_ids)}") from None

    def steps(self, asset_ids: Collection[str] | None = None) -> Iterator[list[InputEvent]]:
        """Yield, for every snapshot interval of plant time, the events of all assets sorted by ``ts``.

        ``asset_ids`` restricts the stream to those assets (a worker's share); each asset's events are the
        same whichever others are simulated beside it.
        """
        cfg = self.config
        if asset_ids is not None:
            unknown = set(asset_ids) - set(self.asset_ids)
            if unknown:
                raise KeyError(f"unknown assets: {', '.join(sorted(unknown))}")
        streams = [_AssetStream(cfg, a) for a in self._assets if asset_ids is None or a.asset_id in asset_ids]
        frame_ns = round(cfg.frame_interval_s * NS_PER_S)
        next_frame = cfg.start_ns + frame_ns // 2
        for k in range(self.total_steps):
            t0 = cfg.start_ns + k * cfg.step_ns
            t1 = t0 + cfg.step_ns
            frames = []
            while next_frame < t1:
                frames.append(next_frame)
                next_frame += frame_ns
            keyed: list[tuple[int, int, int, InputEvent]] = []
            for stream in streams:
                keyed.extend(stream.events(t0, t1, frames))
            keyed.sort(key=lambda item: item[:3])
            yield [item[3] for item in keyed]

    def events(self) -> Iterator[InputEvent]:
        """All events of the run in time order (``steps()`` flattened)."""
        for step in self.steps():
            yield from step


def _ground_truth(asset: _Asset) -> GroundTruth:
    fault = asset.fault
    return GroundTruth(
        asset_id=asset.asset_id,
        asset_kind=asset.kind,
        fault_type=fault.fault_type if fault else None,
        onset_at=fault.onset_ns if fault else None,
        failure_at=fault.failure_ns if fault else None,
        restart_at=fault.restart_ns if fault else None,
        first_modality=FIRST_MODALITY[fault.fault_type] if fault else None,
    )


class _AssetStream:
    """The per-run state of one asset: its random streams, load point and log cursor."""

    def __init__(self, cfg: SimulatorConfig, asset: _Asset) -> None:
        self.cfg, self.asset = cfg, asset
        seed, i = cfg.seed, asset.index
        gain = NDE_GAIN if asset.fault and asset.fault.location == "NDE" else 1.0
        rng = np.random.default_rng([seed, i, VIBRATION])
        self.synth = VibrationSynth(asset.profile, cfg.sample_rate_hz, cfg.n_samples, rng, gain)
        self.camera = CameraRenderer(
            asset.scene, np.random.default_rng([seed, i, CAMERA]), cfg.occlusion_probability, cfg.jpeg_quality
        )
        n_points = len(asset.profile.operating_points)
        self.switch_ns, self.points = load_schedule(
            np.random.default_rng([seed, i, LOAD]), n_points, cfg.start_ns, cfg.end_ns
        )
        self.log_cursor = 0
        self.offset_ns = stagger_offset_ns(asset.asset_id, cfg.stagger_s)

    def events(self, t0: int, t1: int, frames: list[int]) -> Iterator[tuple[int, int, int, InputEvent]]:
        cfg, asset, fault = self.cfg, self.asset, self.asset.fault
        i = asset.index
        if not (fault and fault.is_down(t0)):
            point = asset.profile.operating_points[int(self.points[np.searchsorted(self.switch_ns, t0, "right") - 1])]
            severity = fault.severity(t0) if fault else 0.0
            samples = self.synth.snapshot(point, severity, fault.fault_type if fault else None)
            chunk = VibrationChunk(
                asset_id=asset.asset_id,
                sensor_id="de",
                ts=t0 + self.offset_ns,
                sample_rate_hz=cfg.sample_rate_hz,
                unit="g",
                samples=samples,
            )
            yield t0 + self.offset_ns, i, 0, chunk
        for ts in frames:
            if fault and fault.is_down(ts):
                continue
            data = self.camera.frame(ts, fault.severity(ts) if fault else 0.0, fault.fault_type if fault else None)
            frame = CameraFrame(
                asset_id=asset.asset_id,
                camera_id="cam-1",
                ts=ts + self.offset_ns,
                width=cfg.frame_size,
                height=cfg.frame_size,
                encoding="jpeg",
                data=data,
            )
            yield ts + self.offset_ns, i, 1, frame
        logs = asset.log_events
        while self.log_cursor < len(logs) and logs[self.log_cursor].ts < t1:
            yield logs[self.log_cursor].ts, i, 2, logs[self.log_cursor]
            self.log_cursor += 1
