"""The one online protocol every model follows (river-style), and the result every fuser explains itself with.

``learn_one(x)`` updates the model and returns ``None``; ``score_one(x)`` returns a float where higher
means more anomalous. Models are picklable, seeded, and never mutate their inputs. Fusers take the calibrated
scores of the present modalities (a missing modality is absent from ``x``), may learn from a label
(``learn_one(x, y)``; ``y=None`` teaches nothing) and explain a score with :meth:`Fuser.fuse_one`, which returns
a :class:`FusionResult`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

X_contra = TypeVar("X_contra", contravariant=True)


@dataclass(frozen=True)
class FusionResult:
    """A fused score in [0, 1] (surprise scale), the contributions that sum to it, and the leading modality.

    ``probability`` is the combined score before the surprise scale (``1 - p`` for Fisher).
    """

    fused: float
    contributions: dict[str, float]
    leading: str | None
    probability: float


@runtime_checkable
class Detector(Protocol[X_contra]):
    """An online anomaly detector."""

    def learn_one(self, x: X_contra) -> None:
        """Update the model with one observation."""

    def score_one(self, x: X_contra) -> float:
        """Return the anomaly score of one observation (higher is more anomalous)."""


@runtime_checkable
class Fuser(Protocol):
    """An online fusion of calibrated modality scores into one score with per-modality contributions."""

    def learn_one(self, x: Mapping[str, float], y: bool | None = None) -> None:
        """Learn from one window's calibrated scores and, when known, its label."""

    def score_one(self, x: Mapping[str, float]) -> float:
        """The fused score of one window."""

    def fuse_one(self, x: Mapping[str, float]) -> FusionResult:
        """The fused score with contributions that sum to it, and the leading modality."""
