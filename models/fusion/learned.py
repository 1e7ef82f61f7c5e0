"""The ``learned`` method: a gate over the channels, trained on a fleet's failures by ``fusewatch train``.

Each present, warm channel (``vibration``, ``camera``, ``logs`` and ``early``) brings its surprise in decades,
``s = -log10(1 - calibrated)`` (at most 10). A gate — one linear layer over the surprises, the presence mask
and the context (the asset's kind, one-hot over the kinds it was trained on, and the hours since its last repair
or first window) followed by a softmax over the present channels — decides how much each channel is trusted in
this window; the logit is ``bias + sum(gate_i * weight_i * s_i)``. A missing channel gets no gate weight: it
neither raises nor lowers the score.

The logit is put on the surprise scale through anchors learned with it: the median, 90th, 99th and 99.9th
percentiles of the training history's normal windows' logits stand for 0.3, 1, 2 and 3 decades, and the logit
at which alerts on the training history found the most faults for the fewest false alarms stands for the open
threshold; between anchors the decades are interpolated, beyond the last one extrapolated on its slope. Below
the open threshold a score reads like Fisher's (how rare among normal windows); the open threshold itself is
where the fleet's history says to alert.

The parameters come from a bundle (``fusion.safetensors`` and ``fusion.json``, :meth:`LearnedFusion.parts`);
without them the method cannot score (:attr:`LearnedFusion.trained` is false and the fusion stage leaves it
out). It learns nothing online: a new bundle brings a new gate.

>>> import numpy as np
>>> params = GateParams(kinds=("pump",), gate_weight=np.zeros((4, 10)), gate_bias=np.zeros(4),
...                     weight=np.ones(4), bias=-2.0, anchor_logits=np.array([-2.0, 0.0, 1.0]),
...                     anchor_decades=np.array([0.0, 3.0, 4.5]))
>>> fusion = LearnedFusion(params, decades=10.0)
>>> quiet = fusion.fuse({"vibration": 0.5, "camera": 0.5}, {}, FusionContext("pump", 30.0))
>>> loud = fusion.fuse({"vibration": 1 - 1e-6, "camera": 0.5}, {}, FusionContext("pump", 30.0))
>>> round(quiet.fused, 3), round(loud.fused, 3), loud.leading   # logits -1.70 and 1.15
(0.045, 0.473, 'vibration')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusewatch.core.events import MODALITIES
from models.base import FusionResult
from models.fusion.scale import P_FLOOR, spread, surprise
from models.fusion.window import FusionContext

#: The gate's channels, in the order of its inputs and outputs.
CHANNELS: tuple[str, ...] = (*MODALITIES, "early")
#: The hours since repair are capped here (two weeks) and scaled to [0, 1].
SINCE_REPAIR_CAP_HOURS = 336.0
#: The largest surprise a channel brings, in decades.
MAX_DECADES = 10.0
#: The bundle's files of a learned fusion.
FUSION_TENSORS = "fusion.safetensors"
FUSION_META = "fusion.json"


def channel_decades(x: Mapping[str, float]) -> np.ndarray:
    """Each channel's surprise in decades (0 when missing), in :data:`CHANNELS` order."""
    return np.array([min(MAX_DECADES, -math.log10(max(1.0 - float(x[c]), 10**-MAX_DECADES))) if c in x else 0.0
                     for c in CHANNELS])


def presence(x: Mapping[str, float]) -> np.ndarray:
    """The presence mask of the channels, in :data:`CHANNELS` order."""
    return np.array([1.0 if c in x else 0.0 for c in CHANNELS])


def one_hot(kind: str | None, kinds: Sequence[str]) -> np.ndarray:
    """``kind`` one-hot over ``kinds`` (all zeros for a kind not among them)."""
    return np.array([1.0 if kind == k else 0.0 for k in kinds])


def gate_inputs(decades: np.ndarray, present: np.ndarray, kind: np.ndarray, since_hours: np.ndarray) -> np.ndarray:
    """The gate's input rows ``(n, 2 * channels + kinds + 1)`` from ``(n, channels)`` surprises and presence, the
    one-hot kinds ``(n, kinds)`` and the hours since repair ``(n,)``."""
    since = np.minimum(since_hours, SINCE_REPAIR_CAP_HOURS)[:, None] / SINCE_REPAIR_CAP_HOURS
    return np.concatenate([decades / MAX_DECADES, present, kind, since], axis=1)


@dataclass(frozen=True)
class GateParams:
    """A trained gate and the normal logits it is calibrated against (see the module docstring)."""

    kinds: tuple[str, ...]
    gate_weight: np.ndarray  # (channels, inputs)
    gate_bias: np.ndarray  # (channels,)
    weight: np.ndarray  # (channels,), each channel's weight once gated (non-negative)
    bias: float
    anchor_logits: np.ndarray  # ascending
    anchor_decades: np.ndarray  # the surprise each anchor logit stands for, ascending
    made_from: dict[str, Any] = field(default_factory=dict)

    def logits(self, inputs: np.ndarray, decades: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The logits of ``(n, inputs)`` gate inputs, and the gate ``(n, channels)``."""
        scores = inputs @ self.gate_weight.T + self.gate_bias
        scores = np.where(present > 0, scores, -np.inf)
        scores = scores - np.max(np.where(np.isfinite(scores), scores, -1e300), axis=1, keepdims=True)
        gate = np.where(present > 0, np.exp(scores), 0.0)
        gate = gate / np.maximum(gate.sum(axis=1, keepdims=True), 1e-300)
        return self.bias + (gate * decades * self.weight).sum(axis=1), gate

    def decades(self, logits: np.ndarray) -> np.ndarray:
        """Logits on the anchors' scale: the surprise they stand for, in decades (at least 0)."""
        xs, ys = self.anchor_logits, self.anchor_decades
        beyond = ys[-1] + (logits - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        decades: np.ndarray = np.maximum(np.where(logits <= xs[-1], np.interp(logits, xs, ys), beyond), 0.0)
        return decades

    def p_value(self, logit: float) -> float:
        """``logit`` on the anchors' scale, as a p-value (``10 ** -decades``)."""
        return float(10.0 ** -self.decades(np.array([logit]))[0])

    def parts(self) -> dict[str, Any]:
        """The bundle files that hold it: tensors as safetensors, the rest as JSON."""
        tensors = {name: np.asarray(getattr(self, name), np.float64)
                   for name in ("gate_weight", "gate_bias", "weight", "anchor_logits", "anchor_decades")}
        meta = {"channels": list(CHANNELS), "kinds": list(self.kinds), "bias": self.bias,
                "since_repair_cap_hours": SINCE_REPAIR_CAP_HOURS, "made_from": self.made_from}
        return {FUSION_TENSORS: tensors, FUSION_META: meta}

    @classmethod
    def from_parts(cls, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> GateParams:
        """The gate of a bundle's files; a :class:`ValueError` says what does not fit."""
        if list(meta.get("channels", [])) != list(CHANNELS):
            raise ValueError(f"{FUSION_META}: channels {meta.get('channels')}, this fusewatch has {list(CHANNELS)}")
        kinds = tuple(str(k) for k in meta.get("kinds", []))
        inputs = 2 * len(CHANNELS) + len(kinds) + 1
        try:
            params = cls(kinds, np.asarray(tensors["gate_weight"], float), np.asarray(tensors["gate_bias"], float),
                         np.asarray(tensors["weight"], float), float(meta["bias"]),
                         np.asarray(tensors["anchor_logits"], float), np.asarray(tensors["anchor_decades"], float),
                         dict(meta.get("made_from", {})))
        except KeyError as exc:
            raise ValueError(f"the learned fusion lacks {exc.args[0]!r}") from None
        n = len(CHANNELS)
        if params.gate_weight.shape != (n, inputs) or params.gate_bias.shape != (n,) or params.weight.shape != (n,):
            raise ValueError(f"{FUSION_TENSORS}: shapes do not fit {n} channels and {len(kinds)} kinds")
        xs, ys = params.anchor_logits, params.anchor_decades
        if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 2 or np.any(np.diff(xs) <= 0) or np.any(np.diff(ys) < 0):
            raise ValueError(f"{FUSION_TENSORS}: the anchors must be at least two, ascending")
        return params


class LearnedFusion:
    """The ``learned`` method as the fusion stage runs it; ``params`` ``None`` until a bundle brings a gate."""

    def __init__(self, params: GateParams | None = None, decades: float = 10.0) -> None:
        self.params = params
        self.decades = decades

    @property
    def trained(self) -> bool:
        """Whether it has a gate to score with."""
        return self.params is not None

    def fuse(self, x: Mapping[str, float], shares: Mapping[str, float],
             context: FusionContext | None = None) -> FusionResult:
        """The gated score of one window; the early channel's part is attributed by the early detector's shares."""
        if self.params is None:
            raise RuntimeError("the learned fusion has no gate: it needs a bundle trained with one")
        decades = channel_decades(x)[None, :]
        present = presence(x)[None, :]
        if not present.any():
            return FusionResult(0.0, {}, None, 0.0)
        context = context or FusionContext(None, 0.0)
        kind = one_hot(context.kind, self.params.kinds)[None, :]
        inputs = gate_inputs(decades, present, kind, np.array([context.hours_since_repair]))
        logit, gate = self.params.logits(inputs, decades, present)
        p_value = max(self.params.p_value(float(logit[0])), P_FLOOR)
        fused = surprise(p_value, self.decades)
        terms = dict(zip(CHANNELS, (gate[0] * decades[0] * self.params.weight).tolist(), strict=True))
        evidence: dict[str, float] = {m: terms[m] for m in MODALITIES if m in x}
        early = terms["early"]
        if early > 0 and shares:
            for modality, share in spread(early, dict(shares)).items():
                evidence[modality] = evidence.get(modality, 0.0) + share
        contributions = spread(fused, evidence)
        leading = max(evidence, key=lambda m: evidence[m]) if evidence else None
        return FusionResult(fused, contributions, leading, 1.0 - p_value)

    def learn(self, x: Mapping[str, float], label: bool) -> None:
        """Nothing online: the gate is learned from a fleet's history by ``fusewatch train``."""
