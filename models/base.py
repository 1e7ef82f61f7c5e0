"""The one online protocol every detector follows (river-style).

``learn_one(x)`` updates the model and returns ``None``; ``score_one(x)`` returns a float where higher
means more anomalous. Detectors are picklable, seeded, and never mutate their inputs.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

X_contra = TypeVar("X_contra", contravariant=True)


@runtime_checkable
class Detector(Protocol[X_contra]):
    """An online anomaly detector."""

    def learn_one(self, x: X_contra) -> None:
        """Update the model with one observation."""

    def score_one(self, x: X_contra) -> float:
        """Return the anomaly score of one observation (higher is more anomalous)."""
