"""The scoring pipeline: an aligned window in, a fused score with its explanation out.

Per asset it keeps a vibration detector, a camera detector, a log-severity model and one calibrator per
modality. Nothing is shared between assets, so an asset's scores do not depend on which other assets the same
process happens to handle (one worker or many, embedded or on Kafka). For each window:

1. each present modality gets a raw score (features → detector; frame → autoencoder; logs → severity);
2. vibration and camera raw scores are smoothed by the median of their last ``smoothing_windows`` windows:
   a developing fault shifts many windows, while a single odd window (a person walking past the camera) does
   not move a median; logs already persist across windows;
3. each (smoothed) raw score is calibrated online to (0, 1) against its own recent normal history, which
   includes the slow swings of normal operation (load and lighting regimes), so they are not mistaken for
   faults;
4. the calibrated scores of the warm modalities are fused (presence mask respected) into a surprise-scale
   score with contributions;
5. if the caller allows learning (the asset is not in alert), each calibrator learns the value unless it is
   beyond ``calibration_gate`` (one in a thousand: the reference loses almost nothing of its normal tail, but
   a fault standing out does not enter it) — and only ``learn_delay`` windows later (a day), so a fault
   that creeps up slowly is compared with yesterday's machine, not with itself; the camera model learns
   its frames a day late too; when an alert opens, the values and frames still waiting are dropped. Each
   detector learns the window unless its calibrated score reaches ``learn_gate``: anomalies must not poison
   the models, and a slowly growing fault must not become the new normal. During the first
   ``warmup_windows`` windows of an asset everything learns and the score is flagged ``warmup`` (it never
   alerts).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from river import stats

import fusewatch
from fusewatch.events import MaintenanceLog, Modality, Score
from models.calibration import ProbabilityCalibrator, QuantileCalibrator
from models.camera import CameraDetector
from models.fusion import FusionMethod, LateFusion
from models.text import LogSeverityModel, effective_kind
from models.vibration import BearingFrequencies, VibrationDetector, VibrationFeatures
from streams.aligner import AlignedWindow


class ModelConfig(BaseModel):
    """Settings of the per-modality models, calibration and fusion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fusion: FusionMethod = Field("fisher", description="late-fusion method: fisher, weighted or noisy_or")
    calibration_window: int = Field(2880, ge=10, description="raw scores in each calibrator's reference window")
    calibration_gate: float = Field(
        0.999, gt=0, le=1, description="calibrators learn values calibrated below this (after warm-up)"
    )
    learn_delay: int = Field(1440, ge=0, description="windows before calibrators and the camera model learn a value")
    calibration_min_samples: int = Field(60, ge=1, description="a modality joins fusion after this many")
    warmup_windows: int = Field(2880, ge=0, description="windows per asset flagged warm-up (never alerted)")
    learn_gate: float = Field(0.95, gt=0, le=1, description="detectors learn windows calibrated below this")
    smoothing_windows: int = Field(10, ge=1, description="vibration/camera raw scores: median of this many windows")
    fusion_decades: float = Field(10.0, gt=0, description="fused score 1.0 means a 1 in 10**decades window")
    camera_input_size: int = Field(64, ge=8, description="side of the frame the autoencoder sees")
    vibration_top_k: int = Field(3, ge=1, description="vibration score: mean of this many largest squared z")
    seed: int = Field(0, description="seed of every model")


@dataclass(frozen=True)
class ScoredWindow:
    """The score of one window plus the vibration features behind it (for the features table)."""

    score: Score
    features: dict[str, float]


@dataclass
class _AssetModels:
    vibration: VibrationDetector
    camera: CameraDetector
    text: LogSeverityModel
    calibrators: dict[Modality, QuantileCalibrator | ProbabilityCalibrator]
    smoothers: dict[Modality, Any]  # river stats.RollingQuantile
    pending: dict[Modality, deque[tuple[int, float]]]
    windows: int = 0
    log_cache: dict[tuple[int, int], tuple[float, bool]] = field(default_factory=dict)


class Pipeline:
    """Turns aligned windows into scores; the same object runs in the embedded runner and the Faust worker."""

    def __init__(
        self,
        config: ModelConfig | None = None,
        run_id: str = "live",
        bearings: Callable[[str], BearingFrequencies | None] | None = None,
    ) -> None:
        self.config = config or ModelConfig()
        self.run_id = run_id
        self.bearings = bearings or (lambda asset_id: None)
        self.features = VibrationFeatures()
        self.fusion = LateFusion(self.config.fusion, decades=self.config.fusion_decades)
        self.model_version = f"{fusewatch.__version__}+{self.config.fusion}"
        self._assets: dict[str, _AssetModels] = {}

    def _models(self, asset_id: str) -> _AssetModels:
        models = self._assets.get(asset_id)
        if models is None:
            config = self.config
            seed = config.seed + zlib.crc32(asset_id.encode())
            models = self._assets[asset_id] = _AssetModels(
                vibration=VibrationDetector(top_k=config.vibration_top_k),
                camera=CameraDetector(
                    input_size=config.camera_input_size, learn_delay=config.learn_delay, seed=seed
                ),
                text=LogSeverityModel(),
                calibrators={
                    "vibration": QuantileCalibrator(config.calibration_window, config.calibration_min_samples),
                    "camera": QuantileCalibrator(config.calibration_window, config.calibration_min_samples),
                    "logs": ProbabilityCalibrator(),
                },
                smoothers={
                    m: stats.RollingQuantile(q=0.5, window_size=config.smoothing_windows)
                    for m in ("vibration", "camera")
                },
                pending={m: deque() for m in ("vibration", "camera")},
            )
        return models

    def process(self, window: AlignedWindow, learn: bool = True) -> ScoredWindow:
        """Score one window; learn from it when ``learn`` is true (see the module docstring)."""
        models = self._models(window.asset_id)
        present = window.present
        raw: dict[Modality, float] = {}
        features: dict[str, float] = {}
        log_explanation: list[tuple[str, float]] = []
        if present["vibration"]:
            features = self._vibration_features(window)
            raw["vibration"] = models.vibration.score_one(features)
        if window.frame is not None:
            raw["camera"] = models.camera.score_one(window.frame.pixels)
        if present["logs"]:
            raw["logs"], log_explanation = self._log_score(models, window.logs)
        smoothed = dict(raw)
        for modality, smoother in models.smoothers.items():
            if modality in raw:
                smoother.update(raw[modality])
                smoothed[modality] = float(smoother.get())
        calibrated = {m: models.calibrators[m].score_one(value) for m, value in smoothed.items()}
        warm = {m: models.calibrators[m].warm for m in raw}
        warmup = models.windows < self.config.warmup_windows or not any(warm.values())
        fused = self.fusion.fuse(calibrated, {m: present[m] and warm.get(m, False) for m in present})
        models.windows += 1
        if learn:
            self._learn(models, window, smoothed, calibrated, features, warmup)
        else:  # the day before an alert is never learned as normal
            for queue in models.pending.values():
                queue.clear()
            models.camera.forget_pending()
        score = Score(
            asset_id=window.asset_id,
            window_start=window.start_ns,
            window_end=window.end_ns,
            fused=fused.fused,
            calibrated=calibrated,
            raw=raw,
            contributions=fused.contributions,  # type: ignore[arg-type]
            present=present,
            leading=fused.leading,  # type: ignore[arg-type]
            top_features=self._explain(models, fused.leading, features, log_explanation),
            warmup=warmup,
            model_version=self.model_version,
            run_id=self.run_id,
        )
        return ScoredWindow(score, features)

    @staticmethod
    def _explain(
        models: _AssetModels, leading: str | None, features: dict[str, float], logs: list[tuple[str, float]]
    ) -> list[tuple[str, float]]:
        """The top features of the leading modality only (explaining the others would be wasted work)."""
        if leading == "vibration":
            return models.vibration.explain(features)
        if leading == "camera":
            return models.camera.explain()  # the error map of the frame just scored
        return logs if leading == "logs" else []

    def _vibration_features(self, window: AlignedWindow) -> dict[str, float]:
        bearing = self.bearings(window.asset_id)
        per_chunk = [self.features.transform(c.samples, c.sample_rate_hz, bearing) for c in window.vibration]
        if len(per_chunk) == 1:
            return per_chunk[0]
        return {name: float(np.mean([f[name] for f in per_chunk])) for name in per_chunk[0]}

    def _log_score(
        self, models: _AssetModels, logs: tuple[tuple[MaintenanceLog, float], ...]
    ) -> tuple[float, list[tuple[str, float]]]:
        """Evidence of the logs in the horizon: noisy-or of severity x weight over the entries since the last repair.

        Repeated complaints add up (two notes of severity 0.7 give 0.91); a repair entry resets the evidence,
        since what was written before it describes a machine that has been fixed. Each entry is scored (and
        learned from) once.
        """
        cache: dict[tuple[int, int], tuple[float, bool]] = {}
        judged = []
        for log, weight in logs:
            key = (log.ts, zlib.crc32(log.text.encode()))
            entry = models.log_cache.get(key)
            if entry is None:
                entry = (models.text.score_one(log.text), effective_kind(log.text, log.kind) == "repair")
                models.text.learn_one(log.text, log.kind)
            cache[key] = entry
            judged.append((entry, weight))
        models.log_cache = cache
        since_repair = 0
        for index, ((_, is_repair), _) in enumerate(judged):
            if is_repair:
                since_repair = index + 1
        survival, worst = 1.0, 0.0
        for (severity, _), weight in judged[since_repair:]:
            survival *= 1.0 - severity * weight
            worst = max(worst, severity)
        evidence = 1.0 - survival
        return evidence, [("log_evidence", round(evidence, 3)), ("worst_note_severity", round(worst, 3))]

    def _learn(
        self,
        models: _AssetModels,
        window: AlignedWindow,
        smoothed: dict[Modality, float],
        calibrated: dict[Modality, float],
        features: dict[str, float],
        warmup: bool,
    ) -> None:
        for modality, value in smoothed.items():
            queue = models.pending.get(modality)
            if queue is None:
                continue
            if warmup or calibrated[modality] < self.config.calibration_gate:
                queue.append((models.windows, value))
            while queue and queue[0][0] <= models.windows - self.config.learn_delay:
                models.calibrators[modality].learn_one(queue.popleft()[1])
        gate = self.config.learn_gate
        if "vibration" in smoothed and (warmup or calibrated["vibration"] < gate):
            models.vibration.learn_one(features)
        if window.frame is not None and (warmup or calibrated["camera"] < gate):
            models.camera.learn_one(window.frame.pixels)

    def state(self) -> dict[str, Any]:
        """Everything learned, for a checkpoint (picklable)."""
        return {"assets": self._assets, "model_version": self.model_version}
