"""The sink agent: Kafka's output topics into InfluxDB and alert webhooks, committing only what is stored.

One consumer group (``fusewatch-sink`` by default) reads ``scores``, ``alerts``, ``dead-letter``,
``maintenance-logs`` and ``worker-health``; several agents share the partitions. For every batch (up to
``batch_messages`` messages, or what arrived within ``max_wait_s``; a batch is written as soon as a poll of
``linger_s`` brings nothing more, so a quiet stream is written within milliseconds and a busy one in large
batches):

1. each message becomes a record: a score, an alert transition, a maintenance-log entry; dead letters are counted;
2. the records go through the fan-out (:class:`~connectors.sinks.fanout.FanOut`, the demo's too): the InfluxDB
   sink turns them into points (a score → ``fusewatch_score`` and ``fusewatch_features``, an alert transition →
   ``fusewatch_alert``, a log entry → ``fusewatch_log``) and writes them synchronously (gzip batches); while it
   pushes back (InfluxDB down or answering 429/5xx) the agent **pauses** consumption, keeps its group
   membership, and flushes again with backoff (1 s doubling to ``max_backoff_s``, 10 s, or the server's
   ``Retry-After``) — nothing is dropped and memory stays at one batch;
3. alert transitions are put into the webhook outbox (a SQLite file; a background thread delivers them);
4. the agent's own dead letters are flushed to the dead-letter topic (a Kafka output sink, same back-pressure);
5. only then are the batch's offsets committed. A crash repeats at most the uncommitted batch, and the repeat
   overwrites the same points (deterministic identity) and is deduplicated by the outbox.

A message that is not a valid score or alert, or whose points InfluxDB refuses, goes to the dead-letter topic
with the reason. Every ``health_interval_s`` a ``fusewatch_pipeline`` point records throughput, the workers'
and the sink's lag, dead letters, write time, pending webhooks, and from the workers' latest reports on
``worker-health`` (those of the last ``WORKER_REPORT_TTL_S``) the event-time lag per modality, the bytes their
merges hold and their paused inputs (docs/influxdb.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from connectors.kafka.admin import admin_client
from connectors.kafka.clients import open_client
from connectors.kafka.output_sink import KafkaOutputSink
from connectors.sinks.base import Record, Sink
from connectors.sinks.fanout import Backoff, FanOut
from connectors.sinks.influx.points import PipelineHealth, health_line
from connectors.sinks.influx.writers import InfluxSink
from connectors.webhooks.delivery import WebhookSender
from fusewatch.core.codec import decode
from fusewatch.core.errors import FusewatchError, SinkRejectedError
from fusewatch.core.events import MODALITIES, Alert, DeadLetter, MaintenanceLog, Score, WorkerHealth
from fusewatch.core.kafka_settings import KafkaSettings

log = logging.getLogger(__name__)

WORKER_REPORT_TTL_S = 60.0
"""A worker's report counts in the pipeline-health points this long after it arrived (a stopped worker's fades)."""

REFUSED_RETRY_S = 5.0
"""How often offsets whose commit a rebalance refused are committed again (SinkOptions.rejoin_after_s: how long
before the consumer is replaced)."""

LAG_TIMEOUT_S = 2.0
"""How long a health report waits for the offsets behind the lags. They run on the agent's loop: unbounded (the
consumer's 31 s request timeout, the admin client's 10 s) they stalled consumption for up to a minute while the
brokers were away, and for half a minute after they came back; a lag not known in time is reported as -1."""


@dataclass(frozen=True)
class SinkOptions:
    """How the sink agent batches, retries and reports."""

    group: str = "fusewatch-sink"
    worker_group: str = "fusewatch"  # whose input lag the health points report
    batch_messages: int = 2000
    max_wait_s: float = 0.25  # the longest a message waits in a growing batch (a trickle of scores)
    linger_s: float = 0.02  # with messages pending, how long a poll waits for more before the batch is written
    max_backoff_s: float = 10.0
    health_interval_s: float = 10.0
    stop_when_idle_s: float | None = None  # leave once nothing arrived this long and all is written
    rejoin_after_s: float = 60.0  # commits refused as "not in an active group" this long: a new consumer rejoins


@dataclass
class SinkStats:
    """What the agent did since it started."""

    messages: Counter[str] = field(default_factory=Counter)  # per topic
    points: int = 0
    batches: int = 0
    commits: int = 0
    dead_letters_sent: int = 0
    outages: int = 0
    outage_s: float = 0.0
    max_batch: int = 0
    rejoins: int = 0  # consumers replaced because their group membership hung

    def as_dict(self) -> dict[str, object]:
        return {"messages": dict(self.messages), "points": self.points, "batches": self.batches,
                "commits": self.commits, "dead_letters_sent": self.dead_letters_sent, "outages": self.outages,
                "outage_s": round(self.outage_s, 3), "max_batch": self.max_batch, "rejoins": self.rejoins}


class _Stopped(Exception):
    """The agent was asked to stop while it waited for a sink (the batch stays uncommitted)."""


class SinkAgent:
    """Consume the output topics and write them to InfluxDB (and webhooks) before committing their offsets.

    ``influx`` may be ``None`` (webhooks only). The agent flushes it and closes its own dead-letter sink; closing
    ``influx`` and stopping ``sender`` is the caller's.
    """

    def __init__(self, settings: KafkaSettings, influx: InfluxSink | None, sender: WebhookSender | None = None,
                 options: SinkOptions | None = None) -> None:
        self.settings = settings
        self.topics = settings.topics()
        self.influx = influx
        self.sender = sender
        self.options = options or SinkOptions()
        self.stats = SinkStats()
        self.stop_event = threading.Event()
        self._interval: Counter[str] = Counter()
        self._interval_flush_s = 0.0  # the fan-out's flush time when the interval started
        self._interval_started = time.monotonic()
        self._workers: dict[str, tuple[float, WorkerHealth]] = {}  # worker -> (when received, its latest report)
        self._admin: KafkaAdminClient | None = None
        self._poll_warned = -1e9  # when a poll's connection error was last logged
        self._exits = contextlib.ExitStack()  # the admin client, opened on the first health report
        backoff = Backoff(max_delay_s=self.options.max_backoff_s, max_wait_s=self.options.max_backoff_s, jitter=0.2)
        sinks: list[Sink] = [] if influx is None else [influx]
        self.fanout = FanOut(sinks, sender, backoff, pause=self._wait_paused, resume=self._resume)
        self.dead_letters = KafkaOutputSink(settings, role="sink")
        self.subscribed = (self.topics.scores, self.topics.alerts, self.topics.dead_letter,
                           self.topics.maintenance_logs, self.topics.worker_health)
        self._refused: dict[TopicPartition, OffsetAndMetadata] = {}  # written, commit refused by a rebalance
        self._refused_since: float | None = None  # refused since (monotonic), until a commit goes through
        self._refused_at = 0.0  # the last refusal
        self.consumer = self._open_consumer()

    def _open_consumer(self) -> KafkaConsumer:
        settings = self.settings
        consumer: KafkaConsumer = open_client(
            KafkaConsumer, settings, "sink",
            group_id=self.options.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.options.batch_messages,
            max_partition_fetch_bytes=settings.max_message_bytes,
            fetch_max_bytes=max(settings.max_message_bytes, 16 * 1024 * 1024),
            request_timeout_ms=max(settings.timeout_ms, 31_000),
        )
        # the topics' metadata before the first join: kafka-python 3.0 joins before it has fetched it, assigns
        # nothing ("No partition metadata for topic ..."), and the rejoin when it arrives was seen to hang, leaving
        # the sink without partitions for good
        for topic in self.subscribed:
            consumer.partitions_for_topic(topic)
        consumer.subscribe(list(self.subscribed))
        return consumer

    def _rejoin(self, refused_s: float) -> None:
        """Replace a consumer whose group membership hung (kafka-python 3.0 was seen to stop after electing
        itself leader of a rejoin, its commits refused for minutes while it still fetched): the new one joins the
        group afresh and reads from the committed offsets, so the batches since are written again (same points)."""
        log.warning("commits refused as 'rebalance in progress' for %.0f s: the group membership hung; leaving the"
                    " group and joining again with a new consumer", refused_s)
        with contextlib.suppress(Exception):  # a hung consumer may not leave cleanly: its session then expires
            self.consumer.close(autocommit=False)
        self.consumer = self._open_consumer()
        self._refused, self._refused_since = {}, None  # the new consumer reads them again from the committed offsets
        self.stats.rejoins += 1

    # ------------------------------------------------------------------ main loop

    def run(self) -> SinkStats:
        """Run until :meth:`stop` (or, with ``stop_when_idle_s``, until the topics are drained)."""
        options = self.options
        pending: list[ConsumerRecord] = []
        first_at = last_message = time.monotonic()
        try:
            while not self.stop_event.is_set():
                room = options.batch_messages - len(pending)
                wait_ms = round(options.linger_s * 1000) if pending else 200
                polled = self._poll(wait_ms, max(room, 1))
                now = time.monotonic()
                for records in polled.values():
                    if not pending and records:
                        first_at = now
                    pending.extend(records)
                    last_message = now
                if pending and (len(pending) >= options.batch_messages or now - first_at >= options.max_wait_s
                                or not polled):
                    self._flush(pending)
                    pending = []
                if now - self._interval_started >= options.health_interval_s:
                    self._report_health()
                if not pending:
                    self._retry_refused(now)
                if not self.consumer.assignment():
                    last_message = now  # idle counts from joining the group, not from starting
                idle = time.monotonic() - last_message
                if not pending and options.stop_when_idle_s is not None and idle >= options.stop_when_idle_s:
                    break
            if pending:
                self._flush(pending)
            self._report_health()
        except _Stopped:
            log.warning("stopped while a sink was unavailable: %d messages left uncommitted (read again on"
                        " restart)", len(pending))
            self.fanout.discard()
            self.dead_letters.discard()
        return self.stats

    def stop(self) -> None:
        """Ask :meth:`run` to return (from another thread or a signal handler)."""
        self.stop_event.set()

    def close(self) -> None:
        """Leave the group (without committing anything more) and close the dead-letter producer."""
        self.consumer.close(autocommit=False)
        self._exits.close()
        self.dead_letters.close()

    # ------------------------------------------------------------------ one batch

    def _flush(self, records: Sequence[ConsumerRecord]) -> None:
        sources: list[ConsumerRecord] = []  # the message of each record
        batch: list[Record] = []
        for record in records:
            self.stats.messages[record.topic] += 1
            event = self._translate(record)
            if event is not None:
                sources.append(record)
                batch.append(event)
        influx = self.influx
        written = influx.points_written if influx is not None else 0

        def refused(index: int, error: SinkRejectedError) -> None:
            self._dead_letter(sources[index], f"refused by InfluxDB: {error}")

        self.fanout.deliver(batch, refused)
        if influx is not None:
            self.stats.points += influx.points_written - written
            self._interval["points"] += influx.points_written - written
        self.fanout.flush(self.dead_letters)
        self._note_outages()
        self._commit(records)
        self.stats.batches += 1
        self.stats.max_batch = max(self.stats.max_batch, len(records))

    def _translate(self, record: ConsumerRecord) -> Record | None:
        """The record of one message (``None``: nothing to store); bad scores and alerts are dead-lettered."""
        topic, value = record.topic, record.value or b""
        if topic == self.topics.dead_letter:
            self._interval["dead_letters"] += 1
            return None
        if topic == self.topics.worker_health:
            try:
                report = WorkerHealth.model_validate_json(value)
            except ValidationError:
                log.warning("not a worker report on %s (offset %d): ignored", topic, record.offset)
                return None
            self._workers[report.worker] = (time.monotonic(), report)
            return None
        if topic == self.topics.maintenance_logs:
            try:
                event = decode(value)
            except FusewatchError:
                return None  # an invalid input message: the workers dead-letter it already
            return event if isinstance(event, MaintenanceLog) else None
        try:
            if topic == self.topics.scores:
                score = Score.model_validate_json(value)
                self._interval["scores"] += 1
                return score
            alert = Alert.model_validate_json(value)
        except ValidationError as exc:
            kind = "score" if topic == self.topics.scores else "alert"
            problem = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in problem["loc"]) or "<message>"
            self._dead_letter(record, f"invalid: not a fusewatch {kind}: {where}: {problem['msg']}")
            return None
        self._interval["alerts"] += 1
        return alert

    def _note_outages(self) -> None:
        self.stats.outages = self.fanout.stats.outages
        self.stats.outage_s = self.fanout.stats.outage_s

    def _resume(self) -> None:
        """A sink takes writes again: read on."""
        self.consumer.resume(*self.consumer.paused())

    def _wait_paused(self, seconds: float) -> None:
        """Wait with every partition paused, polling so the group keeps this member (nothing new is read)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stop_event.is_set():
                raise _Stopped
            self.consumer.pause(*self.consumer.assignment())
            polled = self._poll(200)
            if any(polled.values()):  # fetched for a partition assigned in between: read again later
                for tp, records in polled.items():
                    if records:
                        self.consumer.seek(tp, records[0].offset)
                self.consumer.pause(*self.consumer.assignment())

    def _poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord]]:
        """``consumer.poll``; no broker answering counts as nothing new. (kafka-python 3.0's ``poll`` raises the
        connection error of its coordinator lookup when every broker refuses, as during a restart of the whole
        cluster, instead of retrying.)"""
        try:
            polled: dict[TopicPartition, list[ConsumerRecord]] = self.consumer.poll(timeout_ms=timeout_ms,
                                                                                    max_records=max_records)
            return polled
        except KafkaError as exc:
            if not exc.retriable:
                raise
            now = time.monotonic()
            if now - self._poll_warned >= 10.0:
                self._poll_warned = now
                log.warning("no broker answers (%s: %s); polling again", type(exc).__name__, exc)
            self.stop_event.wait(timeout_ms / 1000)
            return {}

    def _commit(self, records: Sequence[ConsumerRecord]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if tp not in offsets or offsets[tp].offset <= record.offset:
                offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        self._commit_offsets(offsets)

    def _commit_offsets(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        delay = 0.5
        while True:
            mine = self.consumer.assignment()
            offsets = {tp: offset for tp, offset in offsets.items() if tp in mine}  # revoked: the new owner repeats
            if not offsets:
                return
            try:
                self.consumer.commit(offsets, timeout_ms=self.settings.timeout_ms)
                self.stats.commits += 1
                self._refused, self._refused_since = {}, None
                return
            except (CommitFailedError, RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError) as exc:
                # a rebalance is taking (or took) the partitions: whoever owns them next writes them again
                log.warning("commit failed after the write (%s); the partitions' new owner repeats the batch", exc)
                now = time.monotonic()
                self._refused_at = now
                if self._refused_since is None:
                    self._refused_since = now
                self._refused.update({tp: o for tp, o in offsets.items()
                                      if tp not in self._refused or self._refused[tp].offset < o.offset})
                if now - self._refused_since >= self.options.rejoin_after_s:
                    self._rejoin(now - self._refused_since)
                return
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                # the brokers or the group coordinator are away (a restart of the cluster): the batch is written,
                # so wait with consumption paused and commit again, as for a sink that is away
                log.warning("commit failed (%s: %s); committing again in %.1f s", type(exc).__name__, exc, delay)
                self._wait_paused(delay)
                self._resume()
                delay = min(2 * delay, self.options.max_backoff_s)

    def _retry_refused(self, now: float) -> None:
        """Commit again what a rebalance refused, every ``REFUSED_RETRY_S``: a rebalance that completed lets it
        through (or took the partitions away), one that never completes ends in :meth:`_rejoin`."""
        if not self._refused:
            return
        mine = self.consumer.assignment()
        self._refused = {tp: o for tp, o in self._refused.items() if tp in mine}  # taken: their new owner repeats
        if not self._refused:
            self._refused_since = None
        elif now - self._refused_at >= REFUSED_RETRY_S:
            self._commit_offsets(dict(self._refused))

    def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        log.warning("dead letter topic=%s partition=%d offset=%d reason=%s", record.topic, record.partition,
                    record.offset, reason)
        letter = DeadLetter(source_topic=record.topic, partition=record.partition, offset=record.offset,
                            error=reason[:2000], raw_base64=base64.b64encode(record.value or b"").decode("ascii"),
                            ts=max(record.timestamp, 0) * 1_000_000)
        self.dead_letters.add(letter)
        self.stats.dead_letters_sent += 1

    # ------------------------------------------------------------------ health

    def lags(self) -> tuple[int, int]:
        """(workers' lag on the input topics, this agent's lag on its topics); -1 when unknown."""
        try:
            assignment = list(self.consumer.assignment())
            timeout_ms = round(LAG_TIMEOUT_S * 1000)
            ends = self.consumer.end_offsets(assignment, timeout_ms=timeout_ms) if assignment else {}
            sink_lag = sum(max(0, ends[tp] - self.consumer.position(tp, timeout_ms=timeout_ms)) for tp in assignment)
        except Exception as exc:  # the broker is unavailable now: report "unknown", never fail the sink
            log.debug("sink lag unknown: %s", exc)
            sink_lag = -1
        return self._worker_lag(), sink_lag

    def _worker_lag(self) -> int:
        try:
            inputs = [TopicPartition(topic, number) for topic in self.topics.inputs
                      for number in sorted(self.consumer.partitions_for_topic(topic) or ())]
            if self._admin is None:  # bounded like the consumer's calls (connecting and each request)
                quick = self.settings.model_copy(update={"timeout_s": min(LAG_TIMEOUT_S, self.settings.timeout_s)})
                self._admin = self._exits.enter_context(admin_client(quick))
            committed = self._admin.list_group_offsets({self.options.worker_group: inputs})
            done = committed.get(self.options.worker_group, {})
            ends = self.consumer.end_offsets(inputs, timeout_ms=round(LAG_TIMEOUT_S * 1000))
            return sum(max(0, ends[tp] - max(done[tp].offset, 0) if tp in done else ends[tp]) for tp in inputs)
        except Exception as exc:  # the broker is unavailable now: report "unknown", never fail the sink
            log.debug("worker lag unknown: %s", exc)
            self._exits.close()
            self._admin = None
            return -1

    def health(self) -> PipelineHealth:
        """The health of the interval since the last report."""
        worker_lag, sink_lag = self.lags()
        pending = self.sender.states().get("pending", 0) if self.sender is not None else 0
        interval = self._interval
        write_s = self.fanout.stats.flush_s - self._interval_flush_s
        now = time.monotonic()
        reports = [report for received, report in self._workers.values() if now - received <= WORKER_REPORT_TTL_S]
        lag = {modality: max((r.event_time_lag_s[modality] for r in reports if modality in r.event_time_lag_s),
                             default=-1.0) for modality in MODALITIES}
        return PipelineHealth(
            interval_s=round(now - self._interval_started, 3), scores=interval["scores"],
            alerts=interval["alerts"], dead_letters=interval["dead_letters"], points=interval["points"],
            write_ms=round(write_s * 1000, 3), worker_lag=worker_lag, sink_lag=sink_lag,
            pending_webhooks=pending, vibration_lag_s=lag["vibration"], camera_lag_s=lag["camera"],
            logs_lag_s=lag["logs"], workers=len(reports), held_bytes=sum(r.held_bytes for r in reports),
            paused_inputs=sum(r.paused for r in reports),
        )

    def _report_health(self) -> None:
        health = self.health()
        log.info("progress %s", json.dumps({**health.__dict__, "total_points": self.stats.points}))
        self._interval = Counter()
        self._interval_flush_s = self.fanout.stats.flush_s
        self._interval_started = time.monotonic()
        if self.influx is not None:  # the agent's own point: not counted among the data points
            self.influx.add_lines([health_line(health, self.options.group, time.time_ns())])
            self.fanout.flush(self.influx)
            self._note_outages()
