"""The simulated plant: assets, their fault schedule, and the time-ordered stream of their input events.

>>> plant = PlantSimulator(SimulatorConfig(assets=2, days=0.01, seed=7))
>>> plant.asset_ids, plant.total_steps
(['pump-01', 'motor-02'], 14)
>>> step = next(plant.steps())
>>> [(type(e).__name__, e.asset_id) for e in step]
[('VibrationChunk', 'pump-01'), ('VibrationChunk', 'motor-02'), ('CameraFrame', 'pump-01'), ('CameraFrame', 'motor-02')]

As a :class:`~connectors.sources.base.Source`, the same run as input messages:

>>> plant.description
'simulated plant: 2 assets x 0.01 days from 2026-01-05T00:00:00Z, seed 7'
>>> [(m.kind, m.key) for m in plant.messages()][:3]
[('vibration', b'pump-01'), ('vibration', b'motor-02'), ('frames', b'pump-01')]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from connectors.sources.base import SourceMessage, messages_of_steps
from connectors.sources.simulator.camera import CameraRenderer, Scene, make_scene
from connectors.sources.simulator.config import SimulatorConfig, stagger_offset_ns
from connectors.sources.simulator.logs import LogEntry, plan_logs
from connectors.sources.simulator.vibration import (
    VibrationProfile,
    VibrationSynth,
    load_schedule,
    make_profile,
)
from fusewatch.core.assets import AssetInfo, AssetRegistry, BearingKinematics
from fusewatch.core.codec import InputEvent
from fusewatch.core.events import (
    CameraFrame,
    FaultType,
    GroundTruth,
    MaintenanceLog,
    Modality,
    VibrationChunk,
)
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_S, format_time

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

    Onset no earlier than ``fault_free_days`` after the start (and no later than ``latest_onset_days``, when
    set); failure ``min_fault_days``-``max_fault_days`` later (shrunk to fit short runs); down for
    ``min_downtime_hours``-``max_downtime_hours``; back at least one hour before the end of the run.
    """
    rng = np.random.default_rng([config.seed, index, SCHEDULE])
    downtime = int(rng.uniform(config.min_downtime_hours, config.max_downtime_hours) * NS_PER_HOUR)
    earliest = config.start_ns + int(config.fault_free_days * NS_PER_DAY)
    available = config.end_ns - NS_PER_HOUR - downtime - earliest
    longest = min(int(config.max_fault_days * NS_PER_DAY), available)
    shortest = min(int(config.min_fault_days * NS_PER_DAY), longest // 2)
    duration = int(rng.uniform(shortest, longest))
    span = available - duration
    if config.latest_onset_days is not None:  # the same draws as without: only the span of the onset shrinks
        span = min(span, config.start_ns + int(config.latest_onset_days * NS_PER_DAY) - earliest)
    onset = earliest + int(rng.uniform(0, span))
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

    @property
    def description(self) -> str:
        cfg = self.config
        return (f"simulated plant: {cfg.assets} assets x {cfg.days:g} days from {format_time(cfg.start_ns)},"
                f" seed {cfg.seed}")

    def messages(self) -> Iterator[SourceMessage]:
        """Every event of the run as the input message a producer sends, in time order (the same every call)."""
        return messages_of_steps(self.steps())

    def close(self) -> None:
        """Nothing to release: the run is computed as it is read."""


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
