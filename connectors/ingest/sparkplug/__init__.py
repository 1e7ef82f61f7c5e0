"""Sparkplug B into the MQTT bridge: DDATA FloatArray/DoubleArray metrics as vibration chunks (docs/ingest-mqtt.md).

``schema`` declares the Sparkplug B payload messages the bridge reads; ``decode`` turns messages into chunks.
:func:`split_done` lets one MQTT message that becomes several Kafka messages be acknowledged once all are in:

>>> calls = []
>>> first, second = split_done(calls.append, 2)
>>> first(None); calls
[]
>>> second(None); calls
[None]
>>> split_done(calls.append, 0), calls
([], [None, None])
"""

from __future__ import annotations

import threading

from connectors.ingest.gateway import Done
from connectors.ingest.sparkplug.decode import (
    NAMESPACE,
    SAMPLE_RATE_METRIC,
    Decoded,
    SparkplugDecoder,
    SparkplugTopic,
    subscriptions,
)

__all__ = ["NAMESPACE", "SAMPLE_RATE_METRIC", "Decoded", "SparkplugDecoder", "SparkplugTopic", "split_done",
           "subscriptions"]


def split_done(done: Done, parts: int) -> list[Done]:
    """``parts`` callbacks that call ``done`` once: with the first error, or with ``None`` when all succeeded.

    With ``parts`` 0, ``done(None)`` is called at once (nothing to wait for).
    """
    if parts == 0:
        done(None)
        return []
    lock = threading.Lock()
    state = {"left": parts, "finished": False}

    def part(error: BaseException | None) -> None:
        with lock:
            if state["finished"]:
                return
            state["left"] -= 1
            if error is None and state["left"] > 0:
                return
            state["finished"] = True
        done(error)

    return [part for _ in range(parts)]
