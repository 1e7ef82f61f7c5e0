"""The scoring pipeline: an aligned window in, a fused score with its explanation out.

The pipeline runs a list of modality stages (:data:`streams.stages.MODALITY_STAGES`: vibration, camera and
logs, one module each in ``streams/stages/``, which describe how each modality is read, learned and explained)
and the early-fusion channel over them (:mod:`streams.stages.early`). Per asset it keeps each stage's learned
state (a detector, an autoencoder, a log-severity model, the early-fusion detector) and one channel per
modality and for early fusion (smoother, calibrator, values waiting to be learned:
:mod:`streams.stages.channel`). Nothing is shared between assets, so an asset's scores do not depend on which
other assets the same process happens to handle (one worker or many, embedded or on Kafka). For each window:

1. each present modality gets a raw score from its stage, in the order of the stage list; the early-fusion
   detector scores the present modalities' features concatenated;
2. the raw scores of the channels that smooth (all but the logs, whose entries already persist across
   windows) are smoothed by the median of their last ``smoothing_windows`` windows: a developing fault shifts
   many windows, while a single odd window (a person walking past the camera) does not move a median;
3. each (smoothed) raw score is calibrated online to (0, 1) against its own recent normal history, which
   includes the slow swings of normal operation (load and lighting regimes), so they are not mistaken for
   faults (the logs' evidence is a probability already and is only clipped);
4. the calibrated scores of the warm channels are fused (presence mask respected) into a surprise-scale
   score with contributions; the leading modality's stage explains it (its top features);
5. if the caller allows learning (the asset is not in alert), each calibrator learns the value unless it is
   beyond ``calibration_gate`` (one in a thousand: the reference loses almost nothing of its normal tail, but
   a fault standing out does not enter it) — and only ``learn_delay`` windows later (a day), so a fault
   that creeps up slowly is compared with yesterday's machine, not with itself; a stage may learn late too
   (the camera model learns its frames a day late); when an alert opens, the values and frames still waiting
   are dropped. Each stage's model learns the window unless its calibrated score reaches ``learn_gate``:
   anomalies must not poison the models, and a slowly growing fault must not become the new normal (a stage
   that is not ``gated`` learns every window the caller allows: the camera's per-pixel background, whose
   slow memory keeps a fault from becoming normal, and whose night frames would otherwise stop being learned
   once they score a little higher than the days it learned, and then ever higher). During
   the first ``warmup_windows`` windows of an asset everything learns and the score is flagged ``warmup`` (it
   never alerts). With a bundle that holds priors for the asset's kind (:mod:`streams.prior_calibration`) the
   warm-up is the prior's few hours, after which the channels are calibrated against the fleet's machines of
   that kind at the same age until the asset's own calibrators take over.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusewatch.core import __version__
from fusewatch.core.assets import AssetRegistry
from fusewatch.core.events import Score
from models.bundle import load_bundle
from models.priors import FleetPriors
from models.retrieval import IncidentMatch, IncidentMemory, signature
from models.text import normalize_log_text
from streams.aligner import AlignedWindow
from streams.fusion_stage import FusionStage
from streams.model_config import ModelConfig
from streams.prior_calibration import AssetPrior, PriorCalibration
from streams.stages import MODALITY_STAGES
from streams.stages.base import ModalityStage, Reading
from streams.stages.channel import Channel
from streams.stages.early import EarlyStage

#: Version of the learned state's layout; part of every score's ``model_version`` and checked on restore.
STATE_VERSION = 4


def _always(window: AlignedWindow) -> bool:
    """Every window may learn (no alert policy)."""
    return True


@dataclass(frozen=True)
class ScoredWindow:
    """The score of one window plus what evaluation and the features table need.

    ``fusion_input`` holds the calibrated scores of the warm channels (modalities and ``early``),
    ``early_shares`` the early detector's attribution, ``new_logs`` the (time, kind) of log entries first seen,
    ``log_words`` the normalised words of its log entries; :meth:`signature` is the window's cross-modal
    signature (for retrieval of similar incidents), computed only when asked for; ``smoothed`` the smoothed raw
    score of every channel whose calibrator learns, all but the logs (what the calibrator sees; fleet training
    fits priors to it); ``kind`` the asset's kind (``None``: unknown), part of the learned fusion's context.
    """

    score: Score
    fusion_input: dict[str, float] = field(default_factory=dict)
    early_shares: dict[str, float] = field(default_factory=dict)
    new_logs: tuple[tuple[int, str], ...] = ()
    log_words: tuple[str, ...] = ()
    smoothed: dict[str, float] = field(default_factory=dict)
    kind: str | None = None

    def signature(self) -> dict[str, float]:
        """Channel surprises, the leading modality's top features and the log words (models/retrieval.py)."""
        surprise = {m: -math.log10(max(1.0 - c, 1e-10)) for m, c in self.fusion_input.items()}
        return signature(surprise, self.score.top_features, self.log_words)


@dataclass
class _AssetState:
    """One asset's learned state: each stage's and each channel's, by channel name (the modalities', then early)."""

    models: dict[str, Any]
    channels: dict[str, Channel]
    windows: int = 0
    peak: tuple[float, dict[str, float], str | None] | None = None  # the most anomalous window since the last incident
    prior: AssetPrior | None = None  # calibration from its kind's prior (a bundle with priors)


class Pipeline:
    """Turns aligned windows into scores; the same object runs in the embedded runner and the Faust worker."""

    #: An incident is remembered only if some window before it scored at least this (surprise scale).
    INCIDENT_MIN_FUSED = 0.2

    def __init__(
        self,
        config: ModelConfig | None = None,
        run_id: str = "live",
        assets: AssetRegistry | None = None,
    ) -> None:
        self.config = config or ModelConfig()
        self.run_id = run_id
        self.use_assets(assets)
        self.early = EarlyStage(self.config)
        self.incidents = IncidentMemory()
        method = self.config.fusion if self.config.fusion != "hybrid" else f"hybrid-{self.config.hybrid_late}"
        # the bundle is checked whole here; only its version and what the stages take from it are kept
        bundle = load_bundle(self.config.bundle) if self.config.bundle is not None else None
        self.fusion = FusionStage(self.config, bundle)
        self.stages: tuple[ModalityStage[Any], ...] = tuple(make(self.config, bundle) for make in MODALITY_STAGES)
        self.bundle_version = bundle.version if bundle is not None else None
        priors = FleetPriors.from_bundle(bundle) if bundle is not None else None
        self.prior = PriorCalibration(priors) if priors is not None else None
        bundled = f".b{bundle.version}" if bundle is not None else ""
        self.model_version = f"{__version__}+{method}.s{STATE_VERSION}{bundled}"
        self.state_version = STATE_VERSION
        self._assets: dict[str, _AssetState] = {}

    def use_assets(self, assets: AssetRegistry | None) -> None:
        """Look assets' kinds and bearings up in ``assets`` (``None``: unknown)."""
        self.assets = assets
        self.bearings = assets.bearings if assets is not None else (lambda asset_id: None)

    def __getstate__(self) -> dict[str, Any]:
        """The learned state: the asset lookups and the bundle's priors are given again on restore."""
        return {key: value for key, value in self.__dict__.items() if key not in ("assets", "bearings", "prior")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Also reads the state of checkpoints written before bundles existed (no ``bundle_version``)."""
        self.__dict__.update({"bundle_version": None, **state})

    def adopt(self, restored: Pipeline) -> Pipeline:
        """``restored`` (a snapshot's pipeline) with this pipeline's asset lookups and priors."""
        restored.use_assets(self.assets)
        restored.prior = self.prior
        return restored

    def _state(self, asset_id: str, first_ns: int) -> _AssetState:
        state = self._assets.get(asset_id)
        if state is None:
            seed = self.config.seed + zlib.crc32(asset_id.encode())
            kind = self.assets.kind(asset_id) if self.assets is not None else None
            models = {stage.name: stage.new_state(seed, kind) for stage in self.stages}
            models[self.early.name] = self.early.new_state(seed)
            channels = {stage.name: stage.new_channel() for stage in self.stages}
            channels[self.early.name] = self.early.new_channel()
            state = self._assets[asset_id] = _AssetState(models, channels)
            if self.prior is not None:
                state.prior = self.prior.start(kind, first_ns)
        return state

    def process(self, window: AlignedWindow, learn: bool = True) -> ScoredWindow:
        """Score one window, a batch of one; learn from it when ``learn`` is true (see the module docstring)."""
        [scored] = self.process_batch([window], lambda window: learn)  # run to the end: the stages learn it
        return scored

    def process_batch(
        self, windows: Sequence[AlignedWindow], may_learn: Callable[[AlignedWindow], bool] = _always
    ) -> Iterator[ScoredWindow]:
        """Score ``windows`` in order, the stages' work done for many windows at once; yields each window's score.

        The windows are taken in runs of distinct assets (a plant minute of 500 assets is one run): each stage
        reads a run in one call (one FFT over its snapshots, one autoencoder pass over its frames), then every
        window of the run is calibrated, fused and gated in order, and the stages learn the run's normal windows
        in one call. An asset's windows are still scored and learned one after the other, so every score is the
        one :meth:`process` gives window by window. ``may_learn(window)`` is asked just before the window is
        scored, after the previous window's score was handed on (the caller's alert policy has seen it).
        """
        for run in _distinct_asset_runs(windows):
            assets = [self._state(window.asset_id, window.start_ns) for window in run]
            try:
                readings = self._read(run, assets)
            except Exception:
                if len(run) == 1:
                    raise
                for window in run:  # a window the stages cannot read: find it (it raises where it comes)
                    yield from self.process_batch([window], may_learn)
                continue
            learned: dict[str, tuple[list[Any], list[AlignedWindow], list[Reading]]] = {
                stage.name: ([], [], []) for stage in self.stages}
            try:
                for window, asset, read in zip(run, assets, readings, strict=True):
                    yield self._score(window, asset, read, may_learn(window), learned)
            finally:  # what was scored is learned, also when the caller stops early
                for stage in self.stages:
                    states, stage_windows, stage_readings = learned[stage.name]
                    if states:
                        stage.learn_batch(states, stage_windows, stage_readings)

    def _read(self, run: list[AlignedWindow], assets: list[_AssetState]) -> list[dict[str, Reading]]:
        """Every stage's readings of a run of distinct assets' windows, by window then stage."""
        readings: list[dict[str, Reading]] = [{} for _ in run]
        for stage in self.stages:
            states = [asset.models[stage.name] for asset in assets]
            for window_readings, reading in zip(readings, stage.score_batch(states, run, self.bearings), strict=True):
                if reading is not None:
                    window_readings[stage.name] = reading
        return readings

    def _score(
        self,
        window: AlignedWindow,
        asset: _AssetState,
        readings: dict[str, Reading],
        learn: bool,
        learned: dict[str, tuple[list[Any], list[AlignedWindow], list[Reading]]],
    ) -> ScoredWindow:
        """Calibrate, fuse and gate one window whose stages have read it; queue what its stages learn."""
        present = window.present
        raw = {name: reading.raw for name, reading in readings.items()}
        early_x = self.early.features(readings.values())
        early_shares: dict[str, float] = {}
        if early_x:
            raw[self.early.name], early_shares = self.early.score(asset.models[self.early.name], early_x)
        smoothed = {m: asset.channels[m].smooth(value) for m, value in raw.items()}
        calibrated = {m: asset.channels[m].calibrate(value) for m, value in smoothed.items()}
        warm = {m: asset.channels[m].warm for m in raw}
        if asset.prior is not None and self.prior is not None:
            self.prior.apply(asset.prior, window.end_ns, smoothed, calibrated, warm, asset.channels)
            warming = self.prior.warming_up(asset.prior, window.end_ns)
        else:
            warming = asset.windows < self.config.warmup_windows
        warmup = warming or not any(warm[m] for m in readings)
        fusion_input = {m: c for m, c in calibrated.items() if warm[m]}
        new_logs = [entry for reading in readings.values() for entry in reading.new_logs]
        kind = self.assets.kind(window.asset_id) if self.assets is not None else None
        fused = self.fusion.fuse(fusion_input, early_shares, self.fusion.context(window.asset_id, window.end_ns, kind))
        self.fusion.observe(window.asset_id, window.end_ns, fusion_input, new_logs)
        asset.windows += 1
        if learn:
            self._learn(asset, window, readings, early_x, smoothed, calibrated, warmup, learned)
        else:  # the day before an alert is never learned as normal
            for channel in asset.channels.values():
                channel.forget_pending()
            for stage in self.stages:
                stage.forget_pending(asset.models[stage.name])
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
            top_features=self._explain(asset, fused.leading, readings),
            warmup=warmup,
            model_version=self.model_version,
            run_id=self.run_id,
            features={name: value for reading in readings.values() for name, value in reading.features.items()},
        )
        words = sorted({word for reading in readings.values() for word in reading.words})
        learned_smoothed = {m: value for m, value in smoothed.items() if asset.channels[m].learns}
        scored = ScoredWindow(score, fusion_input, early_shares, tuple(new_logs), tuple(words), learned_smoothed, kind)
        if not warmup:
            self._remember(asset, window, scored)
        return scored

    def _remember(self, asset: _AssetState, window: AlignedWindow, scored: ScoredWindow) -> None:
        """Track the asset's most anomalous window; a failure or repair entry files it as an incident."""
        fused = scored.score.fused
        if asset.peak is None or fused > asset.peak[0]:
            asset.peak = (fused, scored.signature(), scored.score.leading)
        for ts, kind in scored.new_logs:
            if kind not in ("failure", "repair") or asset.peak is None or asset.peak[0] < self.INCIDENT_MIN_FUSED:
                continue
            text = " | ".join(log.text for log, _ in window.logs if log.ts == ts)
            peak_fused, peak_sig, peak_leading = asset.peak
            words = {f"word:{w}": 1.0 for w in normalize_log_text(text).split()}
            self.incidents.add({**peak_sig, **words}, {
                "asset_id": window.asset_id, "ts": ts, "kind": kind, "text": text, "leading": peak_leading,
                "peak_fused": round(peak_fused, 4),
            })
            asset.peak = None

    def similar_incidents(self, scored: ScoredWindow, k: int = 3) -> list[IncidentMatch]:
        """The past incidents most similar to a scored window (for an alert that opens on it)."""
        return self.incidents.query(scored.signature(), k=k)

    def _explain(
        self, asset: _AssetState, leading: str | None, readings: dict[str, Reading]
    ) -> list[tuple[str, float]]:
        """The top features of the leading modality only (explaining the others would be wasted work)."""
        reading = readings.get(leading) if leading is not None else None
        if reading is None:
            return []
        stage = next(stage for stage in self.stages if stage.name == leading)
        return stage.explain(asset.models[stage.name], reading)

    def _learn(
        self,
        asset: _AssetState,
        window: AlignedWindow,
        readings: dict[str, Reading],
        early_x: dict[str, float],
        smoothed: dict[str, float],
        calibrated: dict[str, float],
        warmup: bool,
        learned: dict[str, tuple[list[Any], list[AlignedWindow], list[Reading]]],
    ) -> None:
        """The channels and the early detector learn now; the stages' learning is queued in ``learned``."""
        config = self.config
        for channel, value in smoothed.items():
            admit = warmup or calibrated[channel] < config.calibration_gate
            asset.channels[channel].learn(value, admit, asset.windows, config.learn_delay)
        gate = config.learn_gate
        if asset.prior is not None and self.prior is not None:
            gate = self.prior.learn_gate(asset.prior, window.end_ns, gate, config.calibration_gate)
        for stage in self.stages:
            reading = readings.get(stage.name)
            if reading is not None and (warmup or not stage.gated or calibrated[stage.name] < gate):
                states, windows, stage_readings = learned[stage.name]
                states.append(asset.models[stage.name])
                windows.append(window)
                stage_readings.append(reading)
        if early_x and (warmup or calibrated[self.early.name] < gate):
            self.early.learn(asset.models[self.early.name], early_x)


def _distinct_asset_runs(windows: Sequence[AlignedWindow]) -> Iterator[list[AlignedWindow]]:
    """``windows`` cut into consecutive runs in which no asset comes twice.

    >>> w = [AlignedWindow(a, 0, 60, vibration=(), frame=None, logs=(), closed_by="flush") for a in "abacb"]
    >>> [[window.asset_id for window in run] for run in _distinct_asset_runs(w)]
    [['a', 'b'], ['a', 'c', 'b']]
    """
    run: list[AlignedWindow] = []
    seen: set[str] = set()
    for window in windows:
        if window.asset_id in seen:
            yield run
            run, seen = [], set()
        run.append(window)
        seen.add(window.asset_id)
    if run:
        yield run
