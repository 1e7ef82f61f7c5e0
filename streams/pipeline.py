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

import math
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import stats

import fusewatch
from fusewatch.core.assets import BearingKinematics
from fusewatch.core.events import MaintenanceLog, Score
from models.calibration import ProbabilityCalibrator, QuantileCalibrator
from models.camera import CameraDetector
from models.early import EarlyFusionDetector, early_features
from models.fifo import FloatFifo
from models.retrieval import IncidentMatch, IncidentMemory, signature
from models.text import LogSeverityModel, effective_kind, normalize_log_text
from models.vibration import VibrationDetector, VibrationFeatures
from streams.aligner import AlignedWindow
from streams.fusion_stage import FusionStage
from streams.model_config import ModelConfig

#: Version of the learned state's layout; part of every score's ``model_version`` and checked on restore.
STATE_VERSION = 2


@dataclass(frozen=True)
class ScoredWindow:
    """The score of one window plus what evaluation and the features table need.

    ``fusion_input`` holds the calibrated scores of the warm channels (modalities and ``early``),
    ``early_shares`` the early detector's attribution, ``new_logs`` the (time, kind) of log entries first seen,
    ``log_words`` the normalised words of its log entries; :meth:`signature` is the window's cross-modal
    signature (for retrieval of similar incidents), computed only when asked for.
    """

    score: Score
    fusion_input: dict[str, float] = field(default_factory=dict)
    early_shares: dict[str, float] = field(default_factory=dict)
    new_logs: tuple[tuple[int, str], ...] = ()
    log_words: tuple[str, ...] = ()

    def signature(self) -> dict[str, float]:
        """Channel surprises, the leading modality's top features and the log words (models/retrieval.py)."""
        surprise = {m: -math.log10(max(1.0 - c, 1e-10)) for m, c in self.fusion_input.items()}
        return signature(surprise, self.score.top_features, self.log_words)


@dataclass
class _AssetModels:
    vibration: VibrationDetector
    camera: CameraDetector
    text: LogSeverityModel
    early: EarlyFusionDetector
    calibrators: dict[str, QuantileCalibrator | ProbabilityCalibrator]
    smoothers: dict[str, Any]  # river stats.RollingQuantile
    pending: dict[str, FloatFifo]  # values waiting to be learned, keyed by the window count they came at
    windows: int = 0
    log_cache: dict[tuple[int, int], tuple[float, bool, tuple[str, ...]]] = field(default_factory=dict)
    peak: tuple[float, dict[str, float], str | None] | None = None  # the most anomalous window since the last incident

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore, converting the pending deques of (window, value) of states pickled before :class:`FloatFifo`."""
        state["pending"] = {m: FloatFifo([v for _, v in q], [k for k, _ in q]) if isinstance(q, deque) else q
                            for m, q in state["pending"].items()}
        self.__dict__.update(state)


_LEARNED_CHANNELS = ("vibration", "camera", "early")


class Pipeline:
    """Turns aligned windows into scores; the same object runs in the embedded runner and the Faust worker."""

    #: An incident is remembered only if some window before it scored at least this (surprise scale).
    INCIDENT_MIN_FUSED = 0.2

    def __init__(
        self,
        config: ModelConfig | None = None,
        run_id: str = "live",
        bearings: Callable[[str], BearingKinematics | None] | None = None,
    ) -> None:
        self.config = config or ModelConfig()
        self.run_id = run_id
        self.bearings = bearings or (lambda asset_id: None)
        self.features = VibrationFeatures()
        self.fusion = FusionStage(self.config)
        self.incidents = IncidentMemory()
        method = self.config.fusion if self.config.fusion != "hybrid" else f"hybrid-{self.config.hybrid_late}"
        self.model_version = f"{fusewatch.__version__}+{method}.s{STATE_VERSION}"
        self.state_version = STATE_VERSION
        self._assets: dict[str, _AssetModels] = {}

    def _models(self, asset_id: str) -> _AssetModels:
        models = self._assets.get(asset_id)
        if models is None:
            config = self.config
            seed = config.seed + zlib.crc32(asset_id.encode())
            models = self._assets[asset_id] = _AssetModels(
                vibration=VibrationDetector(top_k=config.vibration_top_k),
                camera=CameraDetector(
                    input_size=config.camera_input_size, learn_delay=config.learn_delay, seed=seed,
                    depth=config.camera_depth, normalization=config.camera_normalization, error=config.camera_error,
                    error_baseline=config.camera_error_baseline,
                ),
                text=LogSeverityModel(),
                early=EarlyFusionDetector(top_k=config.vibration_top_k),
                calibrators={
                    **{
                        m: QuantileCalibrator(config.calibration_window, config.calibration_min_samples)
                        for m in _LEARNED_CHANNELS
                    },
                    "logs": ProbabilityCalibrator(),
                },
                smoothers={
                    m: stats.RollingQuantile(q=0.5, window_size=config.smoothing_windows) for m in _LEARNED_CHANNELS
                },
                pending={m: FloatFifo(keyed=True) for m in _LEARNED_CHANNELS},
            )
        return models

    def process(self, window: AlignedWindow, learn: bool = True) -> ScoredWindow:
        """Score one window; learn from it when ``learn`` is true (see the module docstring)."""
        models = self._models(window.asset_id)
        present = window.present
        raw: dict[str, float] = {}
        features: dict[str, float] = {}
        log_explanation: list[tuple[str, float]] = []
        new_logs: list[tuple[int, str]] = []
        words: set[str] = set()
        if present["vibration"]:
            features = self._vibration_features(window)
            raw["vibration"] = models.vibration.score_one(features)
        if window.frame is not None:
            raw["camera"] = models.camera.score_one(window.frame.pixels)
        if present["logs"]:
            raw["logs"], log_explanation = self._log_score(models, window.logs, new_logs, words)
        early_x = early_features(features or None, raw.get("camera"), raw.get("logs"))
        early_shares: dict[str, float] = {}
        if early_x:
            raw["early"], early_shares = models.early.score_and_shares(early_x)
        smoothed = dict(raw)
        for channel, smoother in models.smoothers.items():
            if channel in raw:
                smoother.update(raw[channel])
                smoothed[channel] = float(smoother.get())
        calibrated = {m: models.calibrators[m].score_one(value) for m, value in smoothed.items()}
        warm = {m: models.calibrators[m].warm for m in raw}
        warmup = models.windows < self.config.warmup_windows or not any(warm.get(m, False) for m in present)
        fusion_input = {m: c for m, c in calibrated.items() if warm[m]}
        fused = self.fusion.fuse(fusion_input, early_shares)
        self.fusion.observe(window.asset_id, window.end_ns, fusion_input, new_logs)
        models.windows += 1
        if learn:
            self._learn(models, window, smoothed, calibrated, features, early_x, warmup)
        else:  # the day before an alert is never learned as normal
            for queue in models.pending.values():
                queue.clear()
            models.camera.forget_pending()
        top_features = self._explain(models, fused.leading, features, log_explanation)
        score = Score(
            asset_id=window.asset_id,
            window_start=window.start_ns,
            window_end=window.end_ns,
            fused=fused.fused,
            calibrated={m: c for m, c in calibrated.items() if m in present},
            raw={m: r for m, r in raw.items() if m in present},
            contributions={m: fused.contributions.get(m, 0.0) for m in present},
            present=present,
            leading=fused.leading,  # type: ignore[arg-type]
            top_features=top_features,
            warmup=warmup,
            model_version=self.model_version,
            run_id=self.run_id,
            features=features,
        )
        scored = ScoredWindow(score, fusion_input, early_shares, tuple(new_logs), tuple(sorted(words)))
        if not warmup:
            self._remember(models, window, scored)
        return scored

    def _remember(self, models: _AssetModels, window: AlignedWindow, scored: ScoredWindow) -> None:
        """Track the asset's most anomalous window; a failure or repair entry files it as an incident."""
        fused = scored.score.fused
        if models.peak is None or fused > models.peak[0]:
            models.peak = (fused, scored.signature(), scored.score.leading)
        for ts, kind in scored.new_logs:
            if kind not in ("failure", "repair") or models.peak is None or models.peak[0] < self.INCIDENT_MIN_FUSED:
                continue
            text = " | ".join(log.text for log, _ in window.logs if log.ts == ts)
            peak_fused, peak_sig, peak_leading = models.peak
            words = {f"word:{w}": 1.0 for w in normalize_log_text(text).split()}
            self.incidents.add({**peak_sig, **words}, {
                "asset_id": window.asset_id, "ts": ts, "kind": kind, "text": text, "leading": peak_leading,
                "peak_fused": round(peak_fused, 4),
            })
            models.peak = None

    def similar_incidents(self, scored: ScoredWindow, k: int = 3) -> list[IncidentMatch]:
        """The past incidents most similar to a scored window (for an alert that opens on it)."""
        return self.incidents.query(scored.signature(), k=k)

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
        self, models: _AssetModels, logs: tuple[tuple[MaintenanceLog, float], ...], new_logs: list[tuple[int, str]],
        words: set[str],
    ) -> tuple[float, list[tuple[str, float]]]:
        """Evidence of the logs in the horizon: noisy-or of severity x weight over the entries since the last repair.

        Repeated complaints add up (two notes of severity 0.7 give 0.91); a repair entry resets the evidence,
        since what was written before it describes a machine that has been fixed. Each entry is scored (and
        learned from) once; the (time, kind) of entries seen for the first time are appended to ``new_logs``, the
        normalised words of all entries added to ``words`` (for the window's signature).
        """
        cache: dict[tuple[int, int], tuple[float, bool, tuple[str, ...]]] = {}
        judged = []
        for log, weight in logs:
            key = (log.ts, zlib.crc32(log.text.encode()))
            entry = models.log_cache.get(key)
            if entry is None:
                kind = effective_kind(log.text, log.kind)
                entry = (models.text.score_one(log.text), kind == "repair",
                         tuple(normalize_log_text(log.text).split()))
                models.text.learn_one(log.text, log.kind)
                new_logs.append((log.ts, kind))
            cache[key] = entry
            words.update(entry[2])
            judged.append((entry[:2], weight))
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
        smoothed: dict[str, float],
        calibrated: dict[str, float],
        features: dict[str, float],
        early_x: dict[str, float],
        warmup: bool,
    ) -> None:
        for modality, value in smoothed.items():
            queue = models.pending.get(modality)
            if queue is None:
                continue
            if warmup or calibrated[modality] < self.config.calibration_gate:
                queue.append(value, models.windows)
            while queue and queue.first_key() <= models.windows - self.config.learn_delay:
                models.calibrators[modality].learn_one(queue.popleft())
        gate = self.config.learn_gate
        if "vibration" in smoothed and (warmup or calibrated["vibration"] < gate):
            models.vibration.learn_one(features)
        if window.frame is not None and (warmup or calibrated["camera"] < gate):
            models.camera.learn_one(window.frame.pixels)
        if early_x and (warmup or calibrated["early"] < gate):
            models.early.learn_one(early_x)

