"""The logs stage: the maintenance-log entries in the window's horizon → evidence of a fault.

The raw score is the noisy-or of severity × weight over the entries since the last repair: repeated complaints
add up (two notes of severity 0.7 give 0.91); a repair entry resets the evidence, since what was written before
it describes a machine that has been fixed. The severity is the asset's :class:`~models.text.LogSeverityModel`,
which learns every entry the technician labelled; with a model bundle that holds a fleet text model
(``text-model.json``, trained by ``fusewatch train`` on every asset's entries), every asset uses that one model,
which goes on learning from all their entries. Each entry is scored (and learned from) once, when it is first
seen; later windows take its severity from a cache. The evidence is a probability already: it is neither
smoothed nor calibrated against history (:meth:`Channel.probability`), since entries persist across windows by
themselves. The window reports the (time, kind) of its new entries and the normalised words of all of them.

>>> from fusewatch.core.events import MaintenanceLog
>>> stage = LogStage(ModelConfig())
>>> state = stage.new_state(seed=0)
>>> notes = tuple((MaintenanceLog(asset_id="pump-01", ts=ts, text="loud grinding noise at the bearing"), 1.0)
...               for ts in (1, 2))
>>> window = AlignedWindow("pump-01", 0, 60, vibration=(), frame=None, logs=notes, closed_by="flush")
>>> reading = stage.score(state, window, lambda asset_id: None)
>>> reading is not None and reading.raw > max(value for name, value in reading.explanation)
True
>>> reading.new_logs, reading.words
(((1, 'symptom'), (2, 'symptom')), ('at', 'bearing', 'grinding', 'loud', 'noise', 'the'))
>>> stage.score(state, window, lambda asset_id: None).new_logs  # the same entries again: nothing new
()
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from fusewatch.core.errors import BundleError
from models.bundle import Bundle
from models.early import early_features
from models.text import TEXT_MODEL_FILE, LogSeverityModel, effective_kind, normalize_log_text
from streams.aligner import AlignedWindow
from streams.model_config import ModelConfig
from streams.stages.base import BearingLookup, Reading, WindowByWindow
from streams.stages.channel import Channel

#: An entry judged once: (severity, whether it is a repair, its normalised words).
_Judged = tuple[float, bool, tuple[str, ...]]


@dataclass
class LogState:
    """An asset's severity model and the entries of the last window judged, keyed by (time, CRC-32 of the text)."""

    model: LogSeverityModel
    cache: dict[tuple[int, int], _Judged] = field(default_factory=dict)


class LogStage(WindowByWindow[LogState]):
    """Maintenance-log evidence per asset (the severity model per asset, or the fleet's); read window by window."""

    name = "logs"

    def __init__(self, config: ModelConfig, bundle: Bundle | None = None) -> None:
        self.config = config
        self.fleet = _fleet_model(bundle)  # shared by every asset when the bundle has a fleet text model

    def __setstate__(self, state: dict[str, object]) -> None:
        """Also reads the state of checkpoints written before bundles existed (no ``fleet``)."""
        self.__dict__.update({"fleet": None, **state})

    def new_state(self, seed: int, kind: str | None = None) -> LogState:
        """An asset's severity model (the fleet's, when there is one) and empty cache (``seed`` is not needed)."""
        return LogState(self.fleet if self.fleet is not None else LogSeverityModel())

    def new_channel(self) -> Channel:
        """The evidence is a probability: clipped, nothing learned."""
        return Channel.probability()

    def score(self, state: LogState, window: AlignedWindow, bearings: BearingLookup) -> Reading | None:
        """The evidence of the logs in the horizon (see the module docstring); learns the entries first seen."""
        if not window.logs:
            return None
        cache: dict[tuple[int, int], _Judged] = {}
        judged: list[tuple[tuple[float, bool], float]] = []
        new_logs: list[tuple[int, str]] = []
        words: set[str] = set()
        for log, weight in window.logs:
            key = (log.ts, zlib.crc32(log.text.encode()))
            entry = state.cache.get(key)
            if entry is None:
                kind = effective_kind(log.text, log.kind)
                entry = (state.model.score_one(log.text), kind == "repair",
                         tuple(normalize_log_text(log.text).split()))
                state.model.learn_one(log.text, log.kind)
                new_logs.append((log.ts, kind))
            cache[key] = entry
            words.update(entry[2])
            judged.append((entry[:2], weight))
        state.cache = cache
        since_repair = 0
        for index, ((_, is_repair), _) in enumerate(judged):
            if is_repair:
                since_repair = index + 1
        survival, worst = 1.0, 0.0
        for (severity, _), weight in judged[since_repair:]:
            survival *= 1.0 - severity * weight
            worst = max(worst, severity)
        evidence = 1.0 - survival
        return Reading(
            evidence, early_features(None, None, evidence),
            explanation=[("log_evidence", round(evidence, 3)), ("worst_note_severity", round(worst, 3))],
            new_logs=tuple(new_logs), words=tuple(sorted(words)),
        )

    def learn(self, state: LogState, window: AlignedWindow, reading: Reading) -> None:
        """Nothing more to learn: the severity model learned each entry when it was first seen."""

    def forget_pending(self, state: LogState) -> None:
        """Nothing waits."""

    def explain(self, state: LogState, reading: Reading) -> list[tuple[str, float]]:
        """The evidence and the worst entry's severity."""
        return reading.explanation


def _fleet_model(bundle: Bundle | None) -> LogSeverityModel | None:
    """The bundle's fleet text model, or ``None`` without one; a malformed one is a :class:`BundleError`."""
    if bundle is None or not bundle.has(TEXT_MODEL_FILE):
        return None
    try:
        return LogSeverityModel.from_json(bundle.json(TEXT_MODEL_FILE))
    except ValueError as exc:
        raise BundleError(bundle.path, f"{TEXT_MODEL_FILE}: {exc}") from None
