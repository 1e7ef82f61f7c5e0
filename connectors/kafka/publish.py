"""Publish a source into the input topics at plant speed, N times plant speed, or as fast as possible.

:func:`publish` is the one sending loop of ``fusewatch simulate`` (the plant simulator) and ``fusewatch replay``
(a recording or a Kafka time range): each message of a :class:`~connectors.sources.base.Source` goes to
``<topic prefix><kind>`` of the producer's settings with its key, bytes and record timestamp (its event time),
once the plant clock reaches its event time. A message that carries the partition it was recorded in keeps it
when the target topic has that partition; every other message is partitioned by its key (murmur2).

``span_ns`` is the plant time a source covers when it is known beforehand (a simulated run): pacing starts at its
start and the summary reports its length. Without it, pacing starts at the first message and the summary reports
the range of event times sent.

Stopped by Ctrl-C or SIGTERM, :func:`publish` sends nothing more, waits until every message already sent is
acknowledged, logs how many that was, and lets the interrupt through: what reached the topics is then exactly the
first messages of the source, none lost and none repeated (a signal that arrives during a send takes effect
once it is counted: :mod:`connectors.kafka.stopping`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from tqdm import tqdm

from connectors.kafka.pacing import Pacer, SendResult
from connectors.kafka.producer import EventProducer
from connectors.kafka.stopping import StopBetweenSends
from connectors.sources.base import Source
from fusewatch.core.timeutil import NS_PER_MIN, NS_PER_S, format_time

log = logging.getLogger(__name__)


def publish(
    source: Source,
    producer: EventProducer,
    speed: float | None,
    *,
    span_ns: tuple[int, int] | None = None,
    total: int | None = None,
    progress: bool = True,
    desc: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SendResult:
    """Send every message of ``source`` through ``producer`` (then flush); ``speed=None`` sends as fast as possible.

    The progress bar counts plant minutes when ``span_ns`` is given, else messages (of ``total`` when known).
    """
    target = producer.settings
    pacer = Pacer(speed, None if span_ns is None else span_ns[0], clock, sleep)
    sent: Counter[str] = Counter()
    size = 0
    first_ns = last_ns = None
    minutes = None if span_ns is None else -(-(span_ns[1] - span_ns[0]) // NS_PER_MIN)
    with tqdm(total=total if span_ns is None else minutes, unit="msg" if span_ns is None else "plant-min",
              desc=desc, disable=not progress, smoothing=0.1, mininterval=0.5) as bar:
        try:
            with StopBetweenSends() as stop:
                for message in source.messages():
                    pacer.wait_until(message.ts_ns)
                    topic = target.topic_prefix + message.kind
                    partition = message.partition
                    if partition is not None and partition >= target.partitions:
                        partition = None
                    stop.sending = True  # a message is sent and counted, or neither
                    producer.send_record(topic, message.key, message.value, message.timestamp_ms, partition)
                    sent[topic] += 1
                    size += len(message.value)
                    first_ns = message.ts_ns if first_ns is None else min(first_ns, message.ts_ns)
                    last_ns = message.ts_ns if last_ns is None else max(last_ns, message.ts_ns)
                    stop.sent()
                    if span_ns is None:
                        bar.update(1)
                    elif (reached := (message.ts_ns - span_ns[0]) // NS_PER_MIN) > bar.n:
                        bar.update(reached - bar.n)
                        bar.set_postfix(msgs=sum(sent.values()), MB=f"{size / 1e6:.0f}", refresh=False)
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM: deliver what was sent, then stop
            bar.close()
            producer.flush()
            until = "nothing" if last_ns is None else f"event time {format_time(last_ns)}"
            log.warning("stopped: %d message(s) sent and delivered, the first ones of the source, up to %s",
                        sum(sent.values()), until)
            raise
        if span_ns is not None and minutes is not None and minutes > bar.n:
            bar.update(minutes - bar.n)
        producer.flush()
    wall = clock() - pacer.started
    if span_ns is not None:
        plant = (span_ns[1] - span_ns[0]) / NS_PER_S
    else:
        plant = 0.0 if first_ns is None or last_ns is None else (last_ns - first_ns) / NS_PER_S
    return SendResult(sum(sent.values()), size, dict(sent), plant, wall, speed)
