"""A stopped publish (Ctrl-C, SIGTERM) counts exactly what it handed to the producer, even when the signal arrives
in the middle of a send, and flushes it (connectors/kafka/publish.py, connectors/kafka/stopping.py). The real
broker's side is tests/integration/test_kafka_topics_and_simulate.py."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any, cast

import pytest

from connectors.kafka.producer import EventProducer
from connectors.kafka.publish import publish
from connectors.kafka.stopping import StopBetweenSends
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.kafka_settings import KafkaSettings


class SignalledProducer:
    """Records what it is given; sends ``signum`` to this process in the middle of its ``at``-th send."""

    def __init__(self, at: int, signum: int) -> None:
        self.settings = KafkaSettings()
        self.at, self.signum = at, signum
        self.queued: list[tuple[str, bytes | None, int]] = []
        self.flushed_with = -1

    def send_record(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int,
                    partition: int | None = None) -> Any:
        if len(self.queued) + 1 == self.at:
            os.kill(os.getpid(), self.signum)  # handled at the next bytecode: before the message is queued
        self.queued.append((topic, key, timestamp_ms))

    def flush(self) -> None:
        self.flushed_with = len(self.queued)


def plant() -> PlantSimulator:
    return PlantSimulator(SimulatorConfig(assets=2, days=0.05, seed=0, start_ns=0))


@pytest.mark.parametrize("signum, stops_with", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)],
                         ids=["ctrl-c", "sigterm"])
def test_a_signal_during_a_send_stops_after_it_is_counted_and_flushed(
    signum: int, stops_with: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    producer = SignalledProducer(at=7, signum=signum)
    with caplog.at_level(logging.WARNING), pytest.raises(stops_with):
        publish(plant(), cast(EventProducer, producer), None, progress=False)
    assert len(producer.queued) == 7 and producer.flushed_with == 7  # the 7th went out and was counted
    assert "stopped: 7 message(s) sent and delivered" in caplog.text
    first = [(producer.settings.topic_prefix + m.kind, m.key, m.timestamp_ms) for m in plant().messages()][:7]
    assert producer.queued == first
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are given back


def test_a_second_signal_during_a_long_send_stops_at_once() -> None:
    with pytest.raises(KeyboardInterrupt), StopBetweenSends() as stop:
        stop.sending = True
        os.kill(os.getpid(), signal.SIGINT)  # held back
        os.kill(os.getpid(), signal.SIGINT)  # the operator insists
        for _ in range(1000):  # a send that would go on
            pass
        pytest.fail("the second Ctrl-C did not stop the send")
