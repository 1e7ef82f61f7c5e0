"""Stream the plant simulator into Kafka at plant speed, N times plant speed, or as fast as possible.

Paced runs send each event when the plant clock (wall time × speed) reaches its event time, so consumers see
the data arrive as a plant would send it. By default the simulated history is placed so that it ends when the
run ends in wall time: event times never run ahead of the clock (brokers reject timestamps far in the future)
and retention treats the data like live data.

>>> from fusewatch.core.timeutil import format_time, parse_time
>>> start = default_start_ns(now_ns=parse_time("2026-11-30T12:00:30Z"), days=1.0, speed=None)
>>> format_time(start)
'2026-11-29T12:00:00Z'
>>> format_time(default_start_ns(now_ns=parse_time("2026-11-30T12:00:30Z"), days=1.0, speed=1.0))
'2026-11-30T12:00:00Z'
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.kafka.pacing import SendResult
from connectors.kafka.producer import EventProducer
from connectors.kafka.publish import publish
from connectors.sources.simulator import PlantSimulator
from fusewatch.core.timeutil import NS_PER_S


def default_start_ns(now_ns: int, days: float, speed: float | None, step_s: float = 60.0) -> int:
    """Start of plant time such that the run's plant time ends as its wall time does, on a whole step."""
    duration_ns = days * 86_400 * NS_PER_S
    wall_ns = 0.0 if speed is None else duration_ns / speed
    start = now_ns + wall_ns - duration_ns
    step_ns = round(step_s * NS_PER_S)
    return int(start // step_ns) * step_ns


def stream_plant(
    simulator: PlantSimulator,
    producer: EventProducer,
    speed: float | None,
    *,
    progress: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SendResult:
    """Send every event of ``simulator`` through ``producer``; ``speed=None`` sends as fast as possible.

    Plant time runs from the configured start (so ``--start`` pins the pace to the plant clock) over the whole run.
    """
    cfg = simulator.config
    return publish(simulator, producer, speed, span_ns=(cfg.start_ns, cfg.end_ns), progress=progress, clock=clock,
                   sleep=sleep)
