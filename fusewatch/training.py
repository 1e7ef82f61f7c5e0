"""Fleet training: a model bundle learned from recorded history (``fusewatch train``).

What a bundle learned here holds:

- ``text-model.json``: the **fleet text model**, one :class:`~models.text.LogSeverityModel` trained on every
  maintenance-log entry of every asset that a technician labelled (``symptom`` and ``failure`` positive;
  ``inspection``, ``note`` and ``repair`` negative), in event-time order. A processor with the bundle scores every
  asset's entries with it from the first entry on, and it goes on learning online
  (:class:`streams.stages.logs.LogStage`).
- ``priors.json`` and ``priors.npz``: the **kind priors** (:mod:`models.priors`): the history is replayed through
  the site's models with no bundle, every asset treated as new from its first message, and for each channel the
  smoothed raw scores of its normal windows in its first :data:`PRIOR_SPAN_HOURS` are pooled per asset kind and
  age bucket. A window is normal unless a symptom or failure entry of its asset follows within
  ``label_horizon_hours`` (or came before it). Only each asset's first days are replayed.
- ``camera.safetensors``: a **camera model per asset kind** (and one over all kinds): the camera autoencoder of
  ``[models]`` trained on one in :data:`FRAME_STRIDE` of the normal frames of every asset of the kind in its first
  days, shuffled. The priors' replay already starts each camera from these weights, as a new asset will.

The entries are taken in the order of their event time (then asset and text), not in the order a recording or a
topic's partitions hold them, so the same history gives the same bundle wherever it was recorded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fusewatch.backtest.run import run_backtest
from fusewatch.config import FusewatchConfig
from fusewatch.core.assets import AssetRegistry
from fusewatch.core.codec import decode, decode_pixels
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import CameraFrame, MaintenanceLog
from fusewatch.core.history import RecordedMessage
from fusewatch.core.timeutil import NS_PER_HOUR, NS_PER_MS
from models.bundle import ANY_KIND, Bundle, write_bundle
from models.camera import CameraDetector, mean_pool
from models.priors import AssetHistory, FleetPriors, fit_priors
from models.text import TEXT_MODEL_FILE, LogSeverityModel
from streams.model_config import ModelConfig
from streams.pipeline import ScoredWindow
from streams.stages.camera import CAMERA_MODELS_FILE

PRIOR_WARMUP_HOURS = 2.0
"""A new asset's warm-up with the bundle (``fusewatch train --warmup-hours``): its baseline is measured in the
second half; the priors' age buckets start at it and double (2, 4, 8, 16 and 32 h on)."""
PRIOR_SPAN_HOURS = 48.0
"""How long a new asset is calibrated by its prior (then by its own calibrators, once warm)."""
FRAME_STRIDE = 8
"""The camera models learn one in this many of each asset's frames."""
CAMERA_EPOCHS = 2
MIN_CAMERA_FRAMES = 800
"""A kind with fewer normal frames gets no camera model of its own (the pooled one serves it)."""


@dataclass
class TrainingInput:
    """What training read: the log entries (sorted), and how many messages it read or could not decode."""

    entries: list[MaintenanceLog] = field(default_factory=list)
    messages: int = 0
    invalid: int = 0
    frames: dict[str, list[tuple[int, np.ndarray]]] = field(default_factory=dict)
    """Per asset, (time, frame pooled to the camera model's input) of one in :data:`FRAME_STRIDE` frames of its
    first :data:`PRIOR_SPAN_HOURS` (only when :func:`read_history` is given ``frame_size``)."""

    @property
    def labelled(self) -> int:
        return sum(entry.kind is not None for entry in self.entries)


def read_history(messages: Iterable[RecordedMessage], total: int | None = None, progress: bool = True,
                 frame_size: int | None = None) -> TrainingInput:
    """The maintenance-log entries of ``messages`` in event-time order (a message that does not decode is
    counted and skipped: the worker dead-letters it too); with ``frame_size``, a sample of the first days' frames."""
    read = TrainingInput()
    frames = _FrameSample(read.frames, frame_size) if frame_size is not None else None
    for message in tqdm(messages, total=total, unit="msg", desc="reading history", disable=not progress):
        read.messages += 1
        if message.kind == "frames" and frames is not None:
            frames.add(message)
        if message.kind != "maintenance-logs":
            continue
        try:
            event = decode(message.value)
        except InvalidEventError:
            read.invalid += 1
            continue
        if isinstance(event, MaintenanceLog):
            read.entries.append(event)
    read.entries.sort(key=lambda entry: (entry.ts, entry.asset_id, entry.text))
    return read


class _FirstHours:
    """Whether a message was recorded within ``hours`` of the first message of its key (asset) given to it."""

    def __init__(self, hours: float) -> None:
        self.limit_ms = hours * NS_PER_HOUR / NS_PER_MS
        self.first: dict[bytes | None, int] = {}

    def __call__(self, message: RecordedMessage) -> bool:
        return message.timestamp_ms - self.first.setdefault(message.key, message.timestamp_ms) <= self.limit_ms


class _FrameSample:
    """Keeps one in :data:`FRAME_STRIDE` frames of each asset (key) within :data:`PRIOR_SPAN_HOURS` of its first."""

    def __init__(self, frames: dict[str, list[tuple[int, np.ndarray]]], size: int) -> None:
        self.frames, self.size = frames, size
        self.within = _FirstHours(PRIOR_SPAN_HOURS)
        self.seen: dict[bytes | None, int] = defaultdict(int)

    def add(self, message: RecordedMessage) -> None:
        if not self.within(message):
            return
        self.seen[message.key] += 1
        if (self.seen[message.key] - 1) % FRAME_STRIDE:
            return
        try:
            event = decode(message.value)
            if isinstance(event, CameraFrame):
                pooled = mean_pool(decode_pixels(event), self.size).astype(np.float32)
                self.frames.setdefault(event.asset_id, []).append((event.ts, pooled))
        except InvalidEventError:
            pass  # the worker dead-letters it; training has nothing to learn from it


def fault_cuts(entries: Iterable[MaintenanceLog], horizon_ns: int) -> dict[str, int]:
    """Per asset, the time from which its history is not normal: ``horizon_ns`` before its first symptom or failure.

    >>> entry = MaintenanceLog(asset_id="pump-01", ts=10 * NS_PER_HOUR, text="seal leaking", kind="symptom")
    >>> fault_cuts([entry], horizon_ns=4 * NS_PER_HOUR) == {"pump-01": 6 * NS_PER_HOUR}
    True
    """
    cuts: dict[str, int] = {}
    for entry in entries:
        if entry.kind in ("symptom", "failure"):
            cuts[entry.asset_id] = min(cuts.get(entry.asset_id, entry.ts - horizon_ns), entry.ts - horizon_ns)
    return cuts


def train_camera_models(read: TrainingInput, models: ModelConfig,
                        registry: AssetRegistry | None = None) -> dict[str, np.ndarray]:
    """One camera autoencoder per asset kind (and one over all, ``*``) from the sampled normal frames, as the
    tensors of ``camera.safetensors`` (``<kind>/<parameter>``); a kind with too few frames has none."""
    cuts = fault_cuts(read.entries, int(models.label_horizon_hours * NS_PER_HOUR))
    groups: dict[str, list[np.ndarray]] = defaultdict(list)
    for asset_id, frames in sorted(read.frames.items()):
        normal = [pixels for ts, pixels in frames if ts < cuts.get(asset_id, 1 << 62)]
        groups[ANY_KIND] += normal
        kind = registry.kind(asset_id) if registry is not None else None
        if kind:
            groups[kind] += normal
    tensors: dict[str, np.ndarray] = {}
    for kind, pooled in sorted(groups.items()):
        if len(pooled) < MIN_CAMERA_FRAMES:
            continue
        detector = CameraDetector(input_size=models.camera_input_size, depth=models.camera_depth, seed=models.seed,
                                  normalization=models.camera_normalization, error=models.camera_error,
                                  warm_steps=1 << 62)  # every frame learned at once
        order = np.random.default_rng(models.seed)
        for _ in range(CAMERA_EPOCHS):
            for index in order.permutation(len(pooled)):
                detector.learn_one(pooled[index])
        tensors.update({f"{kind}/{name}": value for name, value in detector.weights().items()})
    return tensors


def train_text_model(entries: Iterable[MaintenanceLog]) -> LogSeverityModel:
    """The fleet text model: one severity model over every labelled entry, in the given order.

    >>> entries = [MaintenanceLog(asset_id=f"pump-0{i}", ts=i, text=text, kind=kind) for i, (text, kind) in
    ...            enumerate([("pump cavitating badly", "symptom"), ("routine check ok", "inspection")] * 30)]
    >>> model = train_text_model(entries)
    >>> model.score_one("cavitating again") > model.score_one("routine check")
    True
    """
    model = LogSeverityModel()
    for entry in entries:
        model.learn_one(entry.text, entry.kind)
    return model


def first_days(messages: Iterable[RecordedMessage], hours: float) -> Iterator[RecordedMessage]:
    """The messages of each asset (key) recorded within ``hours`` of its first one (a margin of an hour more)."""
    within = _FirstHours(hours + 1.0)
    return (message for message in messages if within(message))


class FirstDays:
    """Every asset's smoothed channel scores by age (hours since its first window), as a replay scores them."""

    def __init__(self) -> None:
        self.first: dict[str, int] = {}
        self.values: dict[str, dict[str, list[tuple[int, float, float]]]] = defaultdict(lambda: defaultdict(list))

    def __call__(self, scored: ScoredWindow) -> None:
        score = scored.score
        first = self.first.setdefault(score.asset_id, score.window_start)
        age = (score.window_end - first) / NS_PER_HOUR
        for channel, value in scored.smoothed.items():
            self.values[score.asset_id][channel].append((score.window_end, age, value))

    def histories(self, entries: Iterable[MaintenanceLog], horizon_ns: int,
                  registry: AssetRegistry | None) -> list[AssetHistory]:
        """Each asset's normal windows: those before ``horizon_ns`` ahead of its first symptom or failure entry."""
        cuts = fault_cuts(entries, horizon_ns)
        histories = []
        for asset_id, channels in sorted(self.values.items()):
            cut = cuts.get(asset_id, 1 << 62)
            kind = (registry.kind(asset_id) if registry is not None else None) or ANY_KIND
            histories.append(AssetHistory(kind, {channel: [(age, value) for end, age, value in values if end < cut]
                                                 for channel, values in channels.items()}))
        return histories


def prior_buckets(warmup_hours: float) -> tuple[float, ...]:
    """The lower edges of the priors' age buckets: from the warm-up's end, doubling, below the span.

    >>> prior_buckets(2.0), prior_buckets(6.0)
    ((2.0, 4.0, 8.0, 16.0, 32.0), (6.0, 12.0, 24.0))
    """
    if not 0 < warmup_hours < PRIOR_SPAN_HOURS:
        raise ValueError(f"the warm-up must be between 0 and {PRIOR_SPAN_HOURS:g} hours, not {warmup_hours:g}")
    edges = [warmup_hours]
    while edges[-1] * 2 < PRIOR_SPAN_HOURS:
        edges.append(edges[-1] * 2)
    return tuple(edges)


def train_priors(messages: Iterable[RecordedMessage], config: FusewatchConfig, entries: Iterable[MaintenanceLog],
                 registry: AssetRegistry | None = None, progress: bool = True,
                 camera_bundle: Path | None = None, warmup_hours: float = PRIOR_WARMUP_HOURS) -> FleetPriors:
    """The kind priors of the history ``messages`` (replay order), replayed through ``config``'s models with the
    bundle ``camera_bundle`` (the camera models just trained) or none."""
    models = config.models.model_copy(update={"bundle": camera_bundle})
    replay = config.model_copy(update={"models": models})
    collected = FirstDays()
    run_backtest(first_days(messages, PRIOR_SPAN_HOURS), replay, "train", registry=registry, progress=progress,
                 source="training history", on_scored=collected)
    horizon = int(models.label_horizon_hours * NS_PER_HOUR)
    return fit_priors(collected.histories(entries, horizon, registry), warmup_hours, prior_buckets(warmup_hours),
                      PRIOR_SPAN_HOURS)


def train_bundle(read: TrainingInput, out: Path, version: str, description: str = "",
                 made_from: dict[str, Any] | None = None, priors: FleetPriors | None = None,
                 camera: dict[str, np.ndarray] | None = None, fusion: Mapping[str, Any] | None = None) -> Bundle:
    """Train the text model from what :func:`read_history` read; write it with ``priors``, the ``camera``
    models and the learned ``fusion``'s files to ``out``."""
    model = train_text_model(read.entries)
    origin = {**(made_from or {}), "messages": read.messages, "log_entries": len(read.entries),
              "labelled_entries": read.labelled, "invalid_messages": read.invalid,
              "text_model": {"positives": model.positives, "negatives": model.negatives}}
    parts: dict[str, Any] = {TEXT_MODEL_FILE: model.to_json()}
    if priors is not None and priors.kinds:
        parts.update(priors.parts())
        origin["priors"] = {kind: sorted(channels) for kind, channels in sorted(priors.kinds.items())}
    if camera:
        parts[CAMERA_MODELS_FILE] = camera
        origin["camera_models"] = sorted({name.rpartition("/")[0] for name in camera})
    parts.update(fusion or {})
    return write_bundle(out, version, parts, description=description, made_from=origin)
