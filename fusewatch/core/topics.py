"""Topic names (default prefix ``fusewatch.``) and which input topic carries which event.

>>> topics = Topics()
>>> topics.frames, topics.dead_letter
('fusewatch.frames', 'fusewatch.dead-letter')
>>> topics.carries_frames("fusewatch.frames")
True
"""

from __future__ import annotations

from dataclasses import dataclass

from fusewatch.core.codec import InputEvent
from fusewatch.core.events import CameraFrame, VibrationChunk, VibrationFeatureSet


@dataclass(frozen=True)
class Topics:
    """The eight topics of a deployment."""

    prefix: str = "fusewatch."

    @property
    def vibration(self) -> str:
        return f"{self.prefix}vibration"

    @property
    def frames(self) -> str:
        return f"{self.prefix}frames"

    @property
    def maintenance_logs(self) -> str:
        return f"{self.prefix}maintenance-logs"

    @property
    def scores(self) -> str:
        return f"{self.prefix}scores"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}dead-letter"

    @property
    def worker_health(self) -> str:
        return f"{self.prefix}worker-health"

    @property
    def worker_state(self) -> str:
        """The workers' checkpoints (compacted; partition N holds the state of input partition N)."""
        return f"{self.prefix}worker-state"

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.vibration, self.frames, self.maintenance_logs)

    def for_event(self, event: InputEvent) -> str:
        """The input topic an event is published to (a chunk's features go where the chunk would: same key, same
        partition, aligned with it)."""
        if isinstance(event, (VibrationChunk, VibrationFeatureSet)):
            return self.vibration
        if isinstance(event, CameraFrame):
            return self.frames
        return self.maintenance_logs

    def carries_frames(self, topic: str) -> bool:
        """Frame bytes are personal-data-sensitive: dead letters from this topic keep a reference only."""
        return topic == self.frames
