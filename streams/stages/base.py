"""The contract between the pipeline and one modality: :class:`ModalityStage` and the :class:`Reading` it returns.

A stage is created once per pipeline with the model settings and keeps what all assets share (a feature
extractor, say); what it learns per asset lives in a *state* object it creates with :meth:`ModalityStage.new_state`
and the pipeline hands back on every call. The pipeline itself only smooths, calibrates, fuses and gates the
learning; everything that knows what a modality's data look like is in its stage.

A stage reads and learns a *batch* of windows at once, the windows of distinct assets that closed together
(one burst, one poll, one plant minute of a replay): a stage whose work vectorises does it once for the batch
(one FFT over every snapshot, one autoencoder pass over every frame). A stage with nothing to gain reads its
windows one by one: :class:`WindowByWindow` turns its per-window ``score`` and ``learn`` into the batch methods.

>>> class Constant(WindowByWindow[None]):  # a fourth modality, reduced to the minimum
...     name = "constant"
...     gated = True
...     def new_state(self, seed: int, kind: str | None = None) -> None: ...
...     def new_channel(self) -> Channel: return Channel.probability()
...     def score(self, state: None, window: AlignedWindow, bearings: BearingLookup) -> Reading | None:
...         return Reading(raw=0.5, early={"constant.level": 0.5})
...     def learn(self, state: None, window: AlignedWindow, reading: Reading) -> None: ...
...     def forget_pending(self, state: None) -> None: ...
...     def explain(self, state: None, reading: Reading) -> list[tuple[str, float]]: return [("level", reading.raw)]
>>> stage: ModalityStage[None] = Constant()
>>> window = AlignedWindow("pump-01", 0, 60, vibration=(), frame=None, logs=(), closed_by="flush")
>>> stage.score_batch([stage.new_state(seed=0)], [window], lambda asset_id: None)
[Reading(raw=0.5, early={'constant.level': 0.5}, features={}, explanation=[], new_logs=(), words=())]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from fusewatch.core.assets import BearingKinematics
from streams.aligner import AlignedWindow
from streams.stages.channel import Channel

#: The pipeline's lookup of an asset's bearing kinematics (``None``: unknown), given to every stage's ``score``.
BearingLookup = Callable[[str], BearingKinematics | None]

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Reading:
    """What a stage read from one window.

    ``raw``: the raw score (calibrated by the stage's channel); ``early``: the modality's part of the
    early-fusion vector, names prefixed with the modality (``vibration.kurtosis``); ``features``: values
    reported with the score (``Score.features``); ``explanation``: the top features when they are known at
    scoring time (otherwise :meth:`ModalityStage.explain` computes them); ``new_logs``: the (time, kind) of log
    entries seen for the first time, for the fusion stage's labels and the incident memory; ``words``: words for
    the window's retrieval signature.
    """

    raw: float
    early: dict[str, float]
    features: dict[str, float] = field(default_factory=dict)
    explanation: list[tuple[str, float]] = field(default_factory=list)
    new_logs: tuple[tuple[int, str], ...] = ()
    words: tuple[str, ...] = ()


class ModalityStage(Protocol[S]):
    """One modality of the pipeline; ``S`` is the type of its per-asset learned state.

    The pipeline calls, per batch of windows of distinct assets: :meth:`score_batch`; then, per window in the
    batch's order, :meth:`forget_pending` when an alert is open; once every window of the batch is scored,
    :meth:`learn_batch` with the windows the asset may learn whose channel's calibrated score is below
    ``learn_gate`` (or that warm up); and :meth:`explain` when the modality leads a fused score. ``name`` is the
    channel's key in every score (one of the aligner's modalities). Every window of a batch belongs to another
    asset, so a stage may do each window's work in any order, or all at once.
    """

    @property
    def name(self) -> str:
        """The modality, e.g. ``"vibration"``."""
        ...

    @property
    def gated(self) -> bool:
        """Whether :meth:`learn_batch` gets only the windows whose calibrated score is below ``learn_gate``;
        otherwise it gets every window the asset may learn (no alert open)."""
        ...

    def new_state(self, seed: int, kind: str | None = None) -> S:
        """A new asset's learned state (``seed``: the asset's own seed; ``kind``: its kind, ``None`` if unknown)."""
        ...

    def new_channel(self) -> Channel:
        """A new asset's smoothing and calibration of this modality's raw score (see :mod:`streams.stages.channel`)."""
        ...

    def score_batch(self, states: Sequence[S], windows: Sequence[AlignedWindow],
                    bearings: BearingLookup) -> list[Reading | None]:
        """Read the modality's part of each window (``states[i]`` is the asset's of ``windows[i]``); ``None`` where
        the modality is absent."""
        ...

    def learn_batch(self, states: Sequence[S], windows: Sequence[AlignedWindow], readings: Sequence[Reading]) -> None:
        """Learn each window as normal."""
        ...

    def forget_pending(self, state: S) -> None:
        """Drop what waits to be learned later (an alert is open)."""
        ...

    def explain(self, state: S, reading: Reading) -> list[tuple[str, float]]:
        """The top features of the window just scored, as (name, value)."""
        ...


class WindowByWindow(Generic[S]):
    """The batch methods of a stage that reads and learns one window at a time (its ``score`` and ``learn``)."""

    gated = True

    def score(self, state: S, window: AlignedWindow, bearings: BearingLookup) -> Reading | None:
        """Read the modality's part of ``window``; ``None`` when the modality is absent from it."""
        raise NotImplementedError

    def learn(self, state: S, window: AlignedWindow, reading: Reading) -> None:
        """Learn the window as normal."""
        raise NotImplementedError

    def score_batch(self, states: Sequence[S], windows: Sequence[AlignedWindow],
                    bearings: BearingLookup) -> list[Reading | None]:
        """:meth:`score` of each window, in order."""
        return [self.score(state, window, bearings) for state, window in zip(states, windows, strict=True)]

    def learn_batch(self, states: Sequence[S], windows: Sequence[AlignedWindow], readings: Sequence[Reading]) -> None:
        """:meth:`learn` of each window, in order."""
        for state, window, reading in zip(states, windows, readings, strict=True):
            self.learn(state, window, reading)
