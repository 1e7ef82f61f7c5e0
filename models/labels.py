"""Labels from the maintenance log: the windows before a ``failure`` or ``repair`` entry were heading for it.

The log is the feedback loop: when a technician records a failure or a repair on an asset, the windows of
that asset in the ``horizon`` before the entry become positive examples; a window that no such entry followed
within the horizon becomes a negative one as soon as that is certain (when it is ``horizon`` old). Windows are
held per asset only as long as their label is open, so memory is bounded by ``horizon`` per asset.

>>> labeler = FailureLabeler(horizon=3)
>>> out = [labeler.add_window("pump-01", t, {"vibration": 0.5}) for t in (1, 2, 3, 4, 5)]
>>> [(w.end, w.label) for batch in out for w in batch]   # window 1 aged out unlabelled: a negative
[(1, False)]
>>> [(w.end, w.label) for w in labeler.add_log("pump-01", 6, "failure")]   # 3 and later: within 3 before it
[(2, False), (3, True), (4, True), (5, True)]
>>> labeler.add_log("pump-01", 7, "inspection")
[]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

#: Log entry kinds that label the windows before them as positive.
POSITIVE_KINDS = frozenset({"failure", "repair"})


@dataclass(frozen=True)
class LabelledWindow:
    """A window's fusion input with the label the log gave it."""

    asset_id: str
    end: int
    x: Mapping[str, float]
    label: bool


class FailureLabeler:
    """Turns a stream of windows and log entries into labelled windows (see the module docstring).

    Parameters
    ----------
    horizon
        How far before a failure/repair entry windows count as positive, in the same unit as the times given
        (nanoseconds in the pipeline).
    """

    def __init__(self, horizon: int) -> None:
        if horizon <= 0:
            raise ValueError("horizon must be positive")
        self.horizon = horizon
        self._open: dict[str, deque[tuple[int, Mapping[str, float]]]] = {}

    def add_window(self, asset_id: str, end: int, x: Mapping[str, float]) -> list[LabelledWindow]:
        """Hold a window until it is labelled; returns the windows of this asset now certain to be negative."""
        queue = self._open.setdefault(asset_id, deque())
        queue.append((end, dict(x)))
        negatives = []
        while queue and queue[0][0] < end - self.horizon:
            old_end, old_x = queue.popleft()
            negatives.append(LabelledWindow(asset_id, old_end, old_x, False))
        return negatives

    def add_log(self, asset_id: str, ts: int, kind: str) -> list[LabelledWindow]:
        """A log entry; a failure or repair labels the held windows in the horizon before it positive.

        Held windows older than the horizon are returned as negatives, so every window gets exactly one label;
        windows after the entry (it may be written late) stay held.
        """
        if kind not in POSITIVE_KINDS:
            return []
        queue = self._open.get(asset_id, deque())
        labelled = []
        while queue and queue[0][0] <= ts:
            end, x = queue.popleft()
            labelled.append(LabelledWindow(asset_id, end, x, ts - self.horizon <= end))
        return labelled

    @property
    def held(self) -> int:
        """How many windows are waiting for their label."""
        return sum(len(queue) for queue in self._open.values())
