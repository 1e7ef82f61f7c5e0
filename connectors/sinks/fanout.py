"""One path from scored records to their destinations, for the embedded demo and the Kafka sink agent alike.

:meth:`FanOut.deliver` takes one batch of records (scores, alert transitions, dead letters, log entries):

1. every sink is given every record (each keeps the kinds it stores: SQLite rows, InfluxDB points, ...);
2. each sink is flushed; while it pushes back (:class:`~fusewatch.core.errors.SinkBackpressureError`: the
   target is down or asks to slow down) the fan-out pauses and flushes again, waiting as :class:`Backoff` says,
   so nothing is dropped; a batch the target refuses (:class:`~fusewatch.core.errors.SinkRejectedError`) is
   written again record by record and each refused record is handed to the caller (the sink agent dead-letters
   it), or, without a handler, the error is raised;
3. the alert transitions are put into the webhook outbox (signed delivery runs in the sender's own thread);
4. only then does ``deliver`` return: the caller may treat the batch as stored (commit its offsets).

What "pause" means is the caller's: the demo sleeps; the sink agent pauses its Kafka partitions and keeps polling,
so its group keeps it as a member and the backlog waits in Kafka.

>>> from connectors.sinks.sqlite import SqliteSink
>>> from fusewatch.core.events import DeadLetter
>>> letter = DeadLetter(source_topic="fusewatch.vibration", partition=0, offset=7, error="late",
...                     raw_base64="", ts=0)
>>> with SqliteSink(":memory:") as sqlite:
...     FanOut([sqlite]).deliver([letter])
...     [stored.offset for stored in sqlite.read_dead_letters()]
[7]
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from connectors.sinks.base import Record, Sink
from connectors.webhooks.delivery import WebhookSender
from fusewatch.core.errors import SinkBackpressureError, SinkRejectedError
from fusewatch.core.events import Alert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """How a flush waits out back-pressure.

    The delay starts at ``initial_s`` and doubles up to ``max_delay_s``; one wait is the larger of the delay and
    the target's ``retry_after_s``, at most ``max_wait_s`` (when set), scaled by a random factor in
    ``[1 - jitter, 1]``. With ``give_up_after_s``, the error is raised once the next delay would end beyond it.

    >>> rng = random.Random(0)
    >>> Backoff(max_delay_s=30.0).wait_s(1.0, 7.0, rng), Backoff(max_wait_s=10.0).wait_s(8.0, 60.0, rng)
    (7.0, 10.0)
    """

    initial_s: float = 1.0
    max_delay_s: float = 10.0
    max_wait_s: float | None = None
    give_up_after_s: float | None = None
    jitter: float = 0.0

    def wait_s(self, delay_s: float, retry_after_s: float, rng: random.Random) -> float:
        """The wait before the next attempt."""
        wait = max(delay_s, retry_after_s)
        if self.max_wait_s is not None:
            wait = min(wait, self.max_wait_s)
        return wait * rng.uniform(1.0 - self.jitter, 1.0) if self.jitter else wait


@dataclass
class FanOutStats:
    """Outages waited out (a flush that needed retries counts once), their length, and the time in flushes
    (waits included)."""

    outages: int = 0
    outage_s: float = 0.0
    flush_s: float = 0.0


Refused = Callable[[int, SinkRejectedError], None]
"""``refused(index, error)``: the record at ``index`` of the batch was refused by a sink."""


class FanOut:
    """Deliver batches of records to ``sinks`` (in this order), then alert transitions to ``webhooks``.

    ``pause(seconds)`` waits between attempts while a sink pushes back (it may raise to give up, e.g. when the
    process is asked to stop); ``resume()`` is called once a sink takes writes again after an outage.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        webhooks: WebhookSender | None = None,
        backoff: Backoff | None = None,
        pause: Callable[[float], None] = time.sleep,
        resume: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.webhooks = webhooks
        self.backoff = backoff or Backoff()
        self.pause = pause
        self.resume = resume
        self.stats = FanOutStats()
        self._rng = rng or random.Random()

    def deliver(self, records: Sequence[Record], refused: Refused | None = None) -> None:
        """Store ``records`` in every sink and submit their alert transitions to the webhook outbox."""
        for sink in self.sinks:
            for record in records:
                sink.add(record)
        for sink in self.sinks:
            try:
                self.flush(sink)
            except SinkRejectedError as exc:
                if refused is None:
                    raise
                log.error("%r refused a batch (%s); writing it record by record", sink, exc)
                self._one_by_one(sink, records, refused)
        if self.webhooks is not None:
            for record in records:
                if isinstance(record, Alert):
                    self.webhooks.submit(record.alert_id, record.transition, record.severity,
                                         record.model_dump_json().encode())

    def _one_by_one(self, sink: Sink, records: Sequence[Record], refused: Refused) -> None:
        for index, record in enumerate(records):
            if type(record) not in sink.kinds:
                continue
            sink.add(record)
            try:
                self.flush(sink)
            except SinkRejectedError as exc:
                refused(index, exc)

    def flush(self, sink: Sink) -> None:
        """Flush ``sink``; while it pushes back, pause and flush again (never drop).

        When :class:`Backoff` gives up, the sink's buffer is discarded and the error raised: the caller was not
        told the batch is stored, and closing the sink afterwards does not try again.
        """
        backoff = self.backoff
        delay, started, outage_started = backoff.initial_s, time.monotonic(), None
        while True:
            attempt = time.monotonic()
            try:
                sink.flush()
            except SinkBackpressureError as exc:
                if outage_started is None:
                    outage_started = attempt
                    self.stats.outages += 1
                    log.warning("%r cannot take writes (%s); paused, retrying", sink, exc)
                if backoff.give_up_after_s is not None and time.monotonic() + delay > started + backoff.give_up_after_s:
                    sink.discard()
                    raise
                self.pause(backoff.wait_s(delay, exc.retry_after_s, self._rng))
                delay = min(delay * 2, backoff.max_delay_s)
                continue
            finally:
                self.stats.flush_s += time.monotonic() - attempt
            break
        if outage_started is not None:
            elapsed = time.monotonic() - outage_started
            self.stats.outage_s += elapsed
            log.warning("%r takes writes again after %.1f s; resumed", sink, elapsed)
            if self.resume is not None:
                self.resume()

    def discard(self) -> None:
        """Forget what every sink buffers (the caller stops and will read the records again)."""
        for sink in self.sinks:
            sink.discard()
