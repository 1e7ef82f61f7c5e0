"""Sending at plant speed: a clock that waits until the wall time of an event time comes.

>>> slept = []
>>> pacer = Pacer(speed=10.0, origin_ns=0, clock=lambda: 100.0, sleep=slept.append)
>>> pacer.wait_until(50_000_000_000)  # 50 s of plant time at 10x: 5 s after the start
>>> slept
[5.0]
>>> Pacer(speed=None).wait_until(10**18)  # as fast as possible: never waits
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fusewatch.core.timeutil import NS_PER_S


class Pacer:
    """Waits so that event time ``t`` is sent at ``start + (t - origin) / speed`` of wall time.

    ``speed=None`` never waits; the origin is the first event time asked for unless given.
    """

    def __init__(self, speed: float | None, origin_ns: int | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.speed, self.origin_ns = speed, origin_ns
        self.clock, self.sleep = clock, sleep
        self.started = clock()

    def wait_until(self, event_ns: int) -> None:
        if self.speed is None:
            return
        if self.origin_ns is None:
            self.origin_ns = event_ns
        wait = self.started + (event_ns - self.origin_ns) / NS_PER_S / self.speed - self.clock()
        if wait > 0:
            self.sleep(wait)


@dataclass(frozen=True)
class SendResult:
    """What a paced or unpaced run sent, and how fast, in wall time and in plant time."""

    messages: int
    bytes: int
    per_topic: dict[str, int]
    plant_seconds: float
    wall_seconds: float
    requested_speed: float | None

    @property
    def achieved_speed(self) -> float:
        """Plant seconds sent per wall second."""
        return self.plant_seconds / self.wall_seconds if self.wall_seconds > 0 else math.inf

    def summary(self) -> str:
        requested = "max" if self.requested_speed is None else f"{self.requested_speed:g}x"
        seconds = max(self.wall_seconds, 1e-9)
        return (
            f"sent {self.messages} messages ({self.bytes / 1e6:.1f} MB) in {self.wall_seconds:.1f} s:"
            f" {self.messages / seconds:.0f} msg/s, {self.bytes / 1e6 / seconds:.1f} MB/s;"
            f" plant speed {self.achieved_speed:.1f}x (requested {requested})"
        )
