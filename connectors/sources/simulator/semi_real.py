"""A semi-real plant: each modality's stream is drawn from a real public data set (docs/datasets.md).

No public data set records vibration, camera and maintenance logs of the same machine, so this plant stitches
them per asset, minute by minute, with known ground truth:

- **vibration**: one 1 s snapshot per minute from the MFPT bearing records at 48,828 Hz — a random stretch of
  a healthy baseline record (gain jittered ±5 %, as load varies); a degrading asset blends in a stretch of
  an outer- or inner-race fault record, ``(1 - a) * healthy + a * faulty``, with ``a`` growing on its schedule;
- **camera**: one frame per minute of a solar cell the asset produced, from elpv (128×128, PNG) — a random
  defect-free cell of the asset's cell type; a degrading asset turns out defective cells (defect probability
  ≥ 2/3) with a probability growing on its schedule;
- **logs**: NIST nestor excavator work orders — routine orders (kind ``inspection``) about once a day for
  every asset; a degrading asset gets corrective orders (kind ``symptom``) at a rate growing to
  ``3 × level`` a day, a corrective order of kind ``failure`` when it fails and one of kind ``repair`` when it
  runs again.

Each degrading asset follows one of the :data:`SCHEDULES` (which modality shows the fault, from when, how
strongly): one shows it in vibration first, one on camera first, one in the logs first, and one weakly in all
three at once — the case fusion exists for. The level of a modality rises as
``peak * ((t - onset) / (failure - onset)) ** 1.5``. Between failure and restart the machine is stopped: no
vibration and no frames.

>>> SCHEDULES[3].name, [(s.modality, s.delay_hours, s.peak) for s in SCHEDULES[3].signs]
('weak-everywhere', [('vibration', 0.0, 0.35), ('camera', 0.0, 0.35), ('logs', 0.0, 0.35)])
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
from PIL import Image

from connectors.sources.base import SourceMessage, messages_of_steps
from connectors.sources.datasets.elpv import ElpvCell, load_elpv
from connectors.sources.datasets.mfpt import at_rate, load_mfpt
from connectors.sources.datasets.nestor import WorkOrder, load_work_orders
from fusewatch.core.assets import AssetInfo, AssetRegistry, BearingKinematics
from fusewatch.core.codec import InputEvent
from fusewatch.core.events import CameraFrame, GroundTruth, MaintenanceLog, VibrationChunk
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, NS_PER_S, format_time, parse_time

RATE_HZ = 48_828.0
FRAME_SIDE = 128
DEFECTIVE = 2 / 3  # cells at least this likely defective are the "defective" ones


@dataclass(frozen=True)
class Sign:
    """How one modality shows a fault: from ``delay_hours`` after onset, rising to ``peak`` at the failure."""

    modality: str
    delay_hours: float
    peak: float


@dataclass(frozen=True)
class Schedule:
    """A degradation story: its name, fault type, the vibration fault record kind, and the signs."""

    name: str
    fault_type: str
    record: str  # "outer" or "inner": the MFPT fault records blended in
    signs: tuple[Sign, ...]


SCHEDULES = (
    Schedule("vibration-first", "bearing_outer", "outer",
             (Sign("vibration", 0.0, 0.8), Sign("logs", 24.0, 0.8))),
    Schedule("camera-first", "leak", "outer", (Sign("camera", 0.0, 0.8), Sign("logs", 12.0, 0.6))),
    Schedule("logs-first", "bearing_inner", "inner",
             (Sign("logs", 0.0, 0.8), Sign("vibration", 24.0, 0.6), Sign("camera", 36.0, 0.5))),
    Schedule("weak-everywhere", "bearing_outer", "outer",
             (Sign("vibration", 0.0, 0.35), Sign("camera", 0.0, 0.35), Sign("logs", 0.0, 0.35))),
)


@dataclass(frozen=True)
class SemiRealConfig:
    """The run: fleet size, length, seed, start, and which share of the assets degrades."""

    assets: int = 6
    days: float = 8.0
    seed: int = 0
    start_ns: int = parse_time("2026-01-05T00:00:00Z")
    faulty: int = 4

    @property
    def total_steps(self) -> int:
        return int(self.days * 24 * 60)


@dataclass(frozen=True)
class _AssetPlan:
    asset_id: str
    index: int
    cell_type: str
    schedule: Schedule | None
    onset_ns: int | None
    failure_ns: int | None
    restart_ns: int | None

    def level(self, modality: str, ts: int) -> float:
        if self.schedule is None or self.onset_ns is None or self.failure_ns is None:
            return 0.0
        if ts > self.failure_ns:
            return 0.0
        for sign in self.schedule.signs:
            if sign.modality == modality:
                start = self.onset_ns + int(sign.delay_hours * NS_PER_HOUR)
                if ts <= start:
                    return 0.0
                return float(sign.peak * ((ts - start) / (self.failure_ns - start)) ** 1.5)
        return 0.0

    def down(self, ts: int) -> bool:
        return self.failure_ns is not None and self.restart_ns is not None and self.failure_ns < ts < self.restart_ns


class _Sources:
    """The real data, prepared once per process: waveforms at one rate, cell images as PNG, work orders."""

    def __init__(self) -> None:
        records = load_mfpt()
        self.waves = {kind: [at_rate(r, RATE_HZ)[0] for r in records if r.condition == kind]
                      for kind in ("healthy", "outer", "inner")}
        self.bearing: BearingKinematics = records[0].bearing
        cells = load_elpv()
        self.good = {t: [c for c in cells if c.defect_probability == 0 and c.cell_type == t] for t in ("mono", "poly")}
        self.bad = {t: [c for c in cells if c.defect_probability >= DEFECTIVE and c.cell_type == t]
                    for t in ("mono", "poly")}
        orders = [o for o in load_work_orders() if o.text.strip()]
        self.routine = [o for o in orders if o.category == "routine"]
        self.corrective = [o for o in orders if o.category == "failure"]
        self._png: dict[str, bytes] = {}

    def png(self, cell: ElpvCell) -> bytes:
        data = self._png.get(cell.name)
        if data is None:
            image = Image.fromarray(cell.pixels).resize((FRAME_SIDE, FRAME_SIDE), Image.Resampling.BOX)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = self._png[cell.name] = buffer.getvalue()
        return data


@cache
def _prepared_sources() -> _Sources:
    """The real data of this process, shared by its plants (read-only but for the PNG cache)."""
    return _Sources()


class SemiRealPlant:
    """The semi-real fleet: same interface as :class:`~connectors.sources.simulator.PlantSimulator` for the runners."""

    def __init__(self, config: SemiRealConfig | None = None) -> None:
        self.config = config or SemiRealConfig()
        cfg = self.config
        if not 0 <= cfg.faulty <= cfg.assets:
            raise ValueError("faulty must be between 0 and the number of assets")
        self.total_steps = cfg.total_steps
        rng = np.random.default_rng([cfg.seed, 7])
        degrading = set(rng.choice(cfg.assets, size=cfg.faulty, replace=False).tolist())
        self._plans = []
        story = 0
        for index in range(cfg.assets):
            schedule = SCHEDULES[story % len(SCHEDULES)] if index in degrading else None
            story += index in degrading
            onset = failure = restart = None
            if schedule is not None:
                onset = cfg.start_ns + int(float(rng.uniform(0.35, 0.5)) * cfg.days * NS_PER_DAY)
                failure = onset + int(float(rng.uniform(2.5, 3.5)) * NS_PER_DAY)
                failure = min(failure, cfg.start_ns + int((cfg.days - 0.5) * NS_PER_DAY))
                restart = failure + 6 * NS_PER_HOUR
            self._plans.append(_AssetPlan(f"machine-{index + 1:02d}", index, ("mono", "poly")[index % 2], schedule,
                                          onset, failure, restart))
        self.asset_ids = [plan.asset_id for plan in self._plans]
        self.ground_truth = [self._truth(plan) for plan in self._plans]

    @cached_property
    def _sources(self) -> _Sources:
        return _prepared_sources()

    @staticmethod
    def _truth(plan: _AssetPlan) -> GroundTruth:
        first = None
        if plan.schedule is not None:
            first = min(plan.schedule.signs, key=lambda s: s.delay_hours).modality
        return GroundTruth(asset_id=plan.asset_id, asset_kind="motor",
                           fault_type=plan.schedule.fault_type if plan.schedule else None,  # type: ignore[arg-type]
                           onset_at=plan.onset_ns, failure_at=plan.failure_ns, restart_at=plan.restart_ns,
                           first_modality=first)  # type: ignore[arg-type]

    def asset_registry(self) -> AssetRegistry:
        """Every asset carries the MFPT test rig's bearing (shaft 25 Hz)."""
        b = self._sources.bearing
        return AssetRegistry({p.asset_id: AssetInfo("motor", b)
                              for p in self._plans})

    def steps(self, asset_ids: Collection[str] | None = None) -> Iterator[list[InputEvent]]:
        """Yield the events of every minute of plant time, sorted by time (a worker's share when given)."""
        cfg = self.config
        plans = [p for p in self._plans if asset_ids is None or p.asset_id in asset_ids]
        logs = {p.asset_id: self._plan_logs(p) for p in plans}
        rngs = {p.asset_id: np.random.default_rng([cfg.seed, p.index, 11]) for p in plans}
        for step in range(cfg.total_steps):
            t0 = cfg.start_ns + step * NS_PER_MIN
            events: list[tuple[int, str, InputEvent]] = []
            for plan in plans:
                rng = rngs[plan.asset_id]
                while logs[plan.asset_id] and logs[plan.asset_id][0].ts < t0 + NS_PER_MIN:
                    entry = logs[plan.asset_id].pop(0)
                    events.append((entry.ts, plan.asset_id, entry))
                if plan.down(t0):
                    continue
                events.append((t0 + NS_PER_S, plan.asset_id, self._vibration(plan, t0 + NS_PER_S, rng)))
                events.append((t0 + 30 * NS_PER_S, plan.asset_id, self._frame(plan, t0 + 30 * NS_PER_S, rng)))
            events.sort(key=lambda item: (item[0], item[1]))
            yield [event for _, _, event in events]

    @property
    def description(self) -> str:
        cfg = self.config
        return (f"semi-real plant: {cfg.assets} assets ({cfg.faulty} degrading) x {cfg.days:g} days from"
                f" {format_time(cfg.start_ns)}, seed {cfg.seed}")

    def messages(self) -> Iterator[SourceMessage]:
        """Every event as the input message a producer sends, in time order (the same every call): the
        :class:`~connectors.sources.base.Source` protocol."""
        return messages_of_steps(self.steps())

    def close(self) -> None:
        """Nothing to release: the data sets stay loaded for the plant's lifetime."""

    def _vibration(self, plan: _AssetPlan, ts: int, rng: np.random.Generator) -> VibrationChunk:
        sources = self._sources
        n = int(RATE_HZ)

        def stretch(kind: str) -> np.ndarray:
            wave = sources.waves[kind][int(rng.integers(len(sources.waves[kind])))]
            start = int(rng.integers(0, wave.size - n))
            return wave[start : start + n]

        samples = stretch("healthy") * float(rng.uniform(0.95, 1.05))
        level = plan.level("vibration", ts)
        if level > 0 and plan.schedule is not None:
            samples = (1.0 - level) * samples + level * stretch(plan.schedule.record)
        return VibrationChunk(asset_id=plan.asset_id, sensor_id="de", ts=ts, sample_rate_hz=RATE_HZ, unit="g",
                              samples=samples.astype(np.float32))

    def _frame(self, plan: _AssetPlan, ts: int, rng: np.random.Generator) -> CameraFrame:
        sources = self._sources
        defective = rng.random() < plan.level("camera", ts)
        pool = (sources.bad if defective else sources.good)[plan.cell_type]
        data = sources.png(pool[int(rng.integers(len(pool)))])
        return CameraFrame(asset_id=plan.asset_id, camera_id="line", ts=ts, width=FRAME_SIDE, height=FRAME_SIDE,
                           encoding="png", data=data)

    def _plan_logs(self, plan: _AssetPlan) -> list[MaintenanceLog]:
        """Every log entry of the asset, planned up front (Poisson arrivals, minute by minute)."""
        cfg = self.config
        sources = self._sources
        rng = np.random.default_rng([cfg.seed, plan.index, 13])
        entries: list[MaintenanceLog] = []

        def write(ts: int, order: WorkOrder, kind: str) -> None:
            entries.append(MaintenanceLog(asset_id=plan.asset_id, ts=ts, text=order.text, kind=kind,  # type: ignore[arg-type]
                                          author="technician"))

        for step in range(cfg.total_steps):
            t0 = cfg.start_ns + step * NS_PER_MIN
            ts = t0 + int(rng.integers(0, NS_PER_MIN))
            if plan.down(t0):
                continue
            if rng.random() < 1.0 / 1440:
                write(ts, sources.routine[int(rng.integers(len(sources.routine)))], "inspection")
            if rng.random() < 3.0 * plan.level("logs", t0) / 1440:
                write(ts, sources.corrective[int(rng.integers(len(sources.corrective)))], "symptom")
        if plan.failure_ns is not None and plan.restart_ns is not None:
            write(plan.failure_ns, sources.corrective[int(rng.integers(len(sources.corrective)))], "failure")
            write(plan.restart_ns, sources.corrective[int(rng.integers(len(sources.corrective)))], "repair")
        entries.sort(key=lambda e: e.ts)
        return entries
