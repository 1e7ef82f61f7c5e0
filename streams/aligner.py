"""Event-time alignment of the three modalities per asset.

Each asset has tumbling event-time windows ``[start, start + window)``. A window closes when the asset's
**watermark** reaches its end. The watermark follows the *slowest* of the asset's streams that still speak, so
a stream that reaches the processor later than another (a gateway flushing a buffer, one producer slower than
another, a Kafka backlog read topic by topic) still finds its windows open:

- per asset, each modality's **progress** is the largest event time it has sent;
- vibration and camera are **active** while they have sent something within the last ``modality_idle_s`` of
  *processing time*; a modality that falls silent stops holding the asset back, and holds again when it speaks
  (Flink's ``withIdleness``). Maintenance logs are sparse and never hold a window back;
- the watermark is the smallest progress over the active modalities (the largest over all of them when none is
  active), but never more than ``max_hold_s`` behind the asset's newest vibration or frame, minus the allowed
  lateness.

A modality's data is therefore used when it arrives at most ``max_hold_s + allowed_lateness_s`` behind its
asset's newest event and before the modality went idle; otherwise its window is closed and it is *late*. A
maintenance log behind a closed window is kept for the windows still to come (it is not late while it is within
``log_horizon_s``). Every window of an asset that sent nothing for ``idle_timeout_s`` of the runner's clock
closes, so a dead asset never stalls scoring. A window is emitted when at least one event falls inside it; it
then carries:

- the vibration chunks whose ``ts`` lies inside it (or the feature sets computed from them at the edge, which
  stand for their chunks in every rule here);
- the latest frame at or before its end, no older than ``frame_tolerance_s`` (an as-of join);
- the maintenance logs of the last ``log_horizon_s`` with a weight that halves every ``log_half_life_s``;
- a presence mask that says which modalities are present: a missing modality is explicit, never zero.

Events of an already closed window are *late*; repeated events (same asset, source and time) are
*duplicates*. Both are counted and handed back to the caller (to dead-letter the late ones).

>>> from fusewatch.core.events import MaintenanceLog
>>> aligner = Aligner(AlignerConfig(window_s=60, allowed_lateness_s=0), clock=lambda: 0)
>>> log = MaintenanceLog(asset_id="pump-01", ts=5 * NS_PER_S, text="routine check")
>>> aligner.add(log, frame_pixels=None, now_ns=0).windows
[]
>>> later = MaintenanceLog(asset_id="pump-01", ts=61 * NS_PER_S, text="lubricated")
>>> [(w.start_ns, w.present) for w in aligner.add(later, frame_pixels=None, now_ns=0).windows]
[(0, {'vibration': False, 'camera': False, 'logs': True})]
"""

from __future__ import annotations

import bisect
import math
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fusewatch.core.codec import InputEvent
from fusewatch.core.events import (
    CameraFrame,
    MaintenanceLog,
    Modality,
    VibrationChunk,
    VibrationEvent,
    VibrationFeatureSet,
)
from fusewatch.core.timeutil import NS_PER_S

Outcome = Literal["accepted", "late", "duplicate"]

HOLDING_MODALITIES: tuple[Modality, ...] = ("vibration", "camera")
"""The modalities that hold an asset's windows open while they lag (maintenance logs never do)."""

_NEVER = -(2**62)


class AlignerConfig(BaseModel):
    """Window and tolerance settings in seconds of event time (``idle_timeout_s``: seconds of the runner clock)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_s: float = Field(60.0, gt=0, description="length of the tumbling event-time windows")
    allowed_lateness_s: float = Field(30.0, ge=0, description="how far behind the newest event a window closes")
    frame_tolerance_s: float = Field(120.0, ge=0, description="oldest frame the as-of join accepts")
    log_horizon_s: float = Field(72 * 3600.0, ge=0, description="how far back maintenance logs count")
    log_half_life_s: float = Field(12 * 3600.0, gt=0, description="a log's weight halves after this long")
    idle_timeout_s: float = Field(300.0, gt=0, description="close an idle asset's windows after this long")
    modality_idle_s: float = Field(
        120.0, gt=0, description="a modality silent this long (processing time) stops holding its asset's windows"
    )
    max_hold_s: float = Field(
        3 * 3600.0, ge=0, description="longest a lagging modality holds windows open behind its asset's newest event"
    )
    source_wait_s: float = Field(
        2.0, ge=0, description="worker: longest a message waits (processing time) for a quiet input topic"
    )
    max_buffered_mb: float = Field(
        64.0, gt=0, description="worker: input megabytes held per partition before the topics ahead are paused"
    )
    max_future_s: float = Field(86_400.0, gt=0, description="events further ahead of the wall clock are refused")

    def ns(self, name: str) -> int:
        """A setting in integer nanoseconds, e.g. ``config.ns("window_s")``."""
        return round(float(getattr(self, name)) * NS_PER_S)


@dataclass(frozen=True)
class TimedFrame:
    """A decoded camera frame: its event and its grayscale pixels."""

    event: CameraFrame
    pixels: np.ndarray


@dataclass(frozen=True)
class AlignedWindow:
    """One asset's window with everything the pipeline needs to score it."""

    asset_id: str
    start_ns: int
    end_ns: int
    vibration: tuple[VibrationEvent, ...]  # chunks, or feature sets computed from chunks at the edge
    frame: TimedFrame | None
    logs: tuple[tuple[MaintenanceLog, float], ...]
    closed_by: Literal["watermark", "idle", "flush"]

    @property
    def present(self) -> dict[Modality, bool]:
        """The presence mask."""
        return {"vibration": bool(self.vibration), "camera": self.frame is not None, "logs": bool(self.logs)}


@dataclass
class AlignerStats:
    """Counters of what the aligner saw."""

    accepted: int = 0
    late: int = 0
    duplicates: int = 0
    windows: int = 0
    closed_by_idle: int = 0
    logs_after_close: int = 0  # maintenance logs behind a closed window, kept for the windows to come


@dataclass(frozen=True)
class AddResult:
    """What happened to one event, and the windows its arrival closed."""

    outcome: Outcome
    windows: list[AlignedWindow]


@dataclass
class _AssetState:
    max_ts: int = _NEVER
    closed_until: int = _NEVER
    last_seen_now: int = 0
    progress: dict[Modality, int] = field(default_factory=dict)  # modality -> largest event time it sent
    spoke: dict[Modality, int] = field(default_factory=dict)  # modality -> processing time it last sent
    pending: dict[int, list[VibrationEvent]] = field(default_factory=dict)
    frames: list[tuple[int, TimedFrame]] = field(default_factory=list)
    logs: deque[MaintenanceLog] = field(default_factory=deque)
    seen: set[tuple[str, str, int]] = field(default_factory=set)


class Aligner:
    """Per-asset event-time alignment; see the module docstring for the rules.

    ``clock``: processing time in nanoseconds, for modality idleness (default: the wall clock). It is not part of
    a snapshot; a restored aligner counts every modality as having just spoken.
    """

    def __init__(self, config: AlignerConfig | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config or AlignerConfig()
        self.clock = clock
        self._modality_idle = self.config.ns("modality_idle_s")
        self._max_hold = self.config.ns("max_hold_s")
        self._next_hold_check = _NEVER
        self._window = self.config.ns("window_s")
        self._lateness = self.config.ns("allowed_lateness_s")
        self._frame_tolerance = self.config.ns("frame_tolerance_s")
        self._log_horizon = self.config.ns("log_horizon_s")
        self._log_decay = math.log(2.0) / self.config.ns("log_half_life_s")
        self._idle_timeout = self.config.ns("idle_timeout_s")
        self.stats = AlignerStats()
        self._assets: dict[str, _AssetState] = {}

    def add(self, event: InputEvent, frame_pixels: np.ndarray | None, now_ns: int) -> AddResult:
        """Add one validated event (with its decoded pixels for a frame); return the windows it closed."""
        state = self._assets.setdefault(event.asset_id, _AssetState())
        state.last_seen_now = now_ns
        modality = _modality(event)
        behind_close = event.ts < state.closed_until
        if behind_close and (modality != "logs" or event.ts < self._next_end(state) - self._log_horizon):
            self.stats.late += 1
            return AddResult("late", [])
        key = _dedup_key(event)
        if key in state.seen:
            self.stats.duplicates += 1
            return AddResult("duplicate", [])
        state.seen.add(key)
        self.stats.accepted += 1
        if isinstance(event, (VibrationChunk, VibrationFeatureSet)):
            state.pending.setdefault(event.ts - event.ts % self._window, []).append(event)
        elif isinstance(event, CameraFrame):
            if frame_pixels is None:
                raise ValueError("a camera frame needs its decoded pixels")
            state.pending.setdefault(event.ts - event.ts % self._window, [])
            bisect.insort(state.frames, (event.ts, TimedFrame(event, frame_pixels)), key=lambda item: item[0])
        else:
            if behind_close:
                self.stats.logs_after_close += 1
            else:
                state.pending.setdefault(event.ts - event.ts % self._window, [])
            _insert_log(state.logs, event)
        state.progress[modality] = max(state.progress.get(modality, _NEVER), event.ts)
        state.spoke[modality] = self.clock()
        state.max_ts = max(state.max_ts, event.ts)
        return AddResult("accepted", self._close(event.asset_id, state, self._watermark(state), "watermark"))

    def _next_end(self, state: _AssetState) -> int:
        """The end of the next window of the asset to close (after the last closed one if none is open)."""
        return (min(state.pending) if state.pending else state.closed_until) + self._window

    def _watermark(self, state: _AssetState) -> int:
        """The asset's watermark now: its slowest active modality, at most ``max_hold_s`` behind its newest."""
        now = self.clock()
        streams = [state.progress[m] for m in HOLDING_MODALITIES if m in state.progress]
        newest = max(streams) if streams else state.max_ts  # a log dated ahead does not push the bound
        active = [state.progress[m] for m in HOLDING_MODALITIES
                  if m in state.progress and now - state.spoke[m] < self._modality_idle]
        slowest = min(active) if active else state.max_ts
        return max(slowest, newest - self._max_hold) - self._lateness

    def expire_idle(self, now_ns: int) -> list[AlignedWindow]:
        """Close every pending window of assets idle for at least ``idle_timeout_s`` at ``now_ns``, and (at most
        once a second of processing time) the windows a modality that has gone idle no longer holds open."""
        closed: list[AlignedWindow] = []
        for asset_id, state in self._assets.items():
            if state.pending and now_ns - state.last_seen_now >= self._idle_timeout:
                windows = self._close(asset_id, state, 2**62, "idle")
                self.stats.closed_by_idle += len(windows)
                closed.extend(windows)
        now = self.clock()
        if now >= self._next_hold_check:
            self._next_hold_check = now + NS_PER_S
            for asset_id, state in self._assets.items():
                if state.pending:
                    closed.extend(self._close(asset_id, state, self._watermark(state), "watermark"))
        return closed

    def flush(self) -> list[AlignedWindow]:
        """Close every pending window of every asset (end of a finite stream)."""
        closed: list[AlignedWindow] = []
        for asset_id, state in self._assets.items():
            closed.extend(self._close(asset_id, state, 2**62, "flush"))
        return closed

    def pending_windows(self) -> int:
        """How many windows are open across all assets."""
        return sum(len(state.pending) for state in self._assets.values())

    def held_bytes(self) -> int:
        """Sample, feature and pixel bytes the open windows and the as-of join hold, across all assets."""
        total = 0
        for state in self._assets.values():
            total += sum(_held_bytes(item) for items in state.pending.values() for item in items)
            total += sum(frame.pixels.nbytes for _, frame in state.frames)
        return total

    def lag_s(self) -> dict[Modality, float]:
        """Per modality, the most any asset's stream is behind that asset's newest event (event time, seconds).

        Maintenance logs are sparse: their lag is the event time since the last entry of the asset that wrote
        least recently.
        """
        lag: dict[Modality, float] = {}
        for state in self._assets.values():
            for modality, progress in state.progress.items():
                lag[modality] = max(lag.get(modality, 0.0), (state.max_ts - progress) / NS_PER_S)
        return lag

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        del state["clock"]  # a function of this process; processing times are not comparable across processes
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.use_clock(time.time_ns)

    def use_clock(self, clock: Callable[[], int]) -> None:
        """Measure modality idleness on ``clock`` from now on; every modality counts as having just spoken (as
        after a restore, when activity is unknown)."""
        self.clock = clock
        self._next_hold_check = _NEVER
        now = clock()
        for asset in self._assets.values():
            asset.spoke = dict.fromkeys(asset.spoke, now)

    def _close(
        self, asset_id: str, state: _AssetState, watermark: int, reason: Literal["watermark", "idle", "flush"]
    ) -> list[AlignedWindow]:
        window = self._window
        ready = sorted(start for start in state.pending if start + window <= watermark)
        if not ready:
            return []
        closed = [self._build(asset_id, state, start, state.pending.pop(start), reason) for start in ready]
        state.closed_until = max(state.closed_until, ready[-1] + window)
        self._prune(state)
        self.stats.windows += len(closed)
        return closed

    def _build(
        self, asset_id: str, state: _AssetState, start: int, chunks: list[VibrationEvent], reason: str
    ) -> AlignedWindow:
        end = start + self._window
        frame = None
        index = bisect.bisect_left(state.frames, end, key=lambda item: item[0]) - 1
        if index >= 0 and state.frames[index][0] >= end - self._frame_tolerance:
            frame = state.frames[index][1]
        logs = []
        for log in state.logs:
            if log.ts >= end:
                break
            if log.ts >= end - self._log_horizon:
                logs.append((log, math.exp(-self._log_decay * (end - log.ts))))
        chunks.sort(key=lambda chunk: chunk.ts)
        return AlignedWindow(asset_id, start, end, tuple(chunks), frame, tuple(logs), reason)  # type: ignore[arg-type]

    def _prune(self, state: _AssetState) -> None:
        """Drop what no future window can use: old frames, logs past the horizon, stale dedup keys."""
        horizon = state.closed_until
        keep_from = bisect.bisect_left(state.frames, horizon - self._frame_tolerance, key=lambda i: i[0])
        if keep_from > 1:
            del state.frames[: keep_from - 1]  # keep one older frame: the as-of join may still need it
        while state.logs and state.logs[0].ts < horizon - self._log_horizon:
            state.logs.popleft()
        if len(state.seen) > 256:
            state.seen = {key for key in state.seen if key[2] >= horizon}


def _held_bytes(item: VibrationEvent) -> int:
    if isinstance(item, VibrationChunk):
        return int(item.samples.nbytes)
    return 8 * len(item.features)


def _modality(event: InputEvent) -> Modality:
    if isinstance(event, (VibrationChunk, VibrationFeatureSet)):
        return "vibration"
    if isinstance(event, CameraFrame):
        return "camera"
    return "logs"


def _dedup_key(event: InputEvent) -> tuple[str, str, int]:
    if isinstance(event, (VibrationChunk, VibrationFeatureSet)):  # a chunk and its features are one reading
        return ("vibration", event.sensor_id, event.ts)
    if isinstance(event, CameraFrame):
        return ("camera", event.camera_id, event.ts)
    return ("logs", str(zlib.crc32(event.text.encode())), event.ts)


def _insert_log(logs: deque[MaintenanceLog], log: MaintenanceLog) -> None:
    if not logs or logs[-1].ts <= log.ts:
        logs.append(log)
        return
    ordered = sorted([*logs, log], key=lambda entry: entry.ts)
    logs.clear()
    logs.extend(ordered)
