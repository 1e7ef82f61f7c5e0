"""The distributed runner: a faust-streaming app whose one agent feeds the shared stream processor from Kafka.

Workers started with the same app id form a consumer group and share the partitions; faust's assignor gives
partition N of the three co-partitioned input topics to one worker, which owns those assets' state in a
:class:`~streams.runners.partition.PartitionProcessor`. The agent stays thin:

1. messages are buffered per partition number in an :class:`~streams.runners.merge.EventTimeMerger` and released in
   event-time order (a topic with nothing buffered holds the others while it has more on the broker or spoke
   within ``[aligner] source_wait_s``); above ``[aligner] max_buffered_mb`` held per partition, the input
   topic-partitions that are ahead are paused until the others catch up;
2. each released message goes through the processor inside a batch that stays open while the agent has messages at
   hand: the windows they close are scored together (:meth:`StreamProcessor.batch`) once the agent would wait for
   the next fetch (or ``max_batch_windows`` windows wait, or the batch is ``max_batch_age_s`` old), so a poll or a
   burst of closing windows is one batch;
   the scores, alerts and dead letters are sent to the output topics (keys = asset id, header ``fusewatch-id`` =
   deterministic id);
3. every ``checkpoint_every`` messages, once the oldest unacknowledged message is ``checkpoint_interval_s``
   old (one partition per timer tick), and when a partition is revoked, the open batch is scored, the outputs
   are flushed, the partition's state is written with the offsets it covers, and only then are the messages
   acknowledged, so faust never commits an offset whose effects are not in a checkpoint.

Processing is at-least-once with idempotent outputs: after a crash the new owner restores the checkpoint,
skips what it covers and processes the rest again, repeating the same output ids. Faust's ``exactly_once``
guarantee is not used (faust-streaming #323, #517, #47: duplicates and crashes); see docs/worker.md.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Protocol, cast

import faust
from faust.types import TP, EventT, StreamT

from fusewatch.core.errors import IncompatibleStateError
from fusewatch.core.events import WorkerHealth
from fusewatch.core.kafka_settings import KafkaSettings
from models.camera import prepare_torch
from streams.checkpoint import Checkpoint, CheckpointStorage, CheckpointStore
from streams.runners.inputs import InputControl, OwnedPartition
from streams.runners.merge import EventTimeMerger, WaitClock
from streams.runners.partition import OutgoingMessage, PartitionProcessor
from streams.runners.worker_options import WorkerOptions, faust_app_settings
from streams.settings import StreamSettings

log = logging.getLogger(__name__)

HEALTH_SEND_TIMEOUT_S = 2.0


def freeze_heap() -> None:
    """Collect, then move every object the process holds into the collector's permanent generation.

    What a worker holds once its partitions are assigned (imported modules: ~310,000 objects; a restored state
    of 100 assets: ~180,000 more) lives as long as the assignment, and every full collection walked all of it,
    pausing scoring for 0.2-0.35 s. Frozen, it is left out of those walks (a restored 100-asset worker's full
    collections: ~220 ms before, 4-5 ms after); objects allocated later are collected as usual. A revoke
    unfreezes everything, so the revoked state's cycles are collected.

    >>> freeze_heap(); frozen = gc.get_freeze_count(); gc.unfreeze()
    >>> frozen > 0
    True
    """
    gc.collect()
    gc.freeze()


class OutputSink(Protocol):
    """Where a worker's output messages go: the Kafka topics (``ProducerSink``), or a list in agent tests."""

    async def send(self, messages: list[OutgoingMessage]) -> None: ...

    async def flush(self) -> None: ...


class ProducerSink:
    """Sends output messages with the faust app's producer (keys hashed with murmur2, like the inputs)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send(self, messages: list[OutgoingMessage]) -> None:
        for message in messages:
            await self.app.producer.send(message.topic, message.key, message.value, None, None, list(message.headers))

    async def flush(self) -> None:
        await self.app.producer.flush()


class Worker:
    """Builds the faust app and keeps the per-partition state of one worker process."""

    def __init__(
        self, config: StreamSettings, settings: KafkaSettings, options: WorkerOptions, sink: OutputSink | None = None,
        store: CheckpointStorage | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.options = options
        self.topics = settings.topics()
        self.digest = options.config_digest
        self.store: CheckpointStorage = store or CheckpointStore(options.workdir / "checkpoints")
        # one thread reads and writes the checkpoints, so those of a partition reach the store in the order they were
        # taken, and a partition is restored only after its last checkpoint was written
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusewatch-checkpoint")
        self.owned: dict[int, OwnedPartition] = {}
        self._loading: dict[int, asyncio.Future[None]] = {}  # partitions whose checkpoints are being read
        self.assigned: set[int] = set()  # partition numbers the group gave this worker
        self.stats: dict[str, int] = defaultdict(int)
        self.wait_clock = WaitClock()  # what the waits for quiet inputs and idle modalities are measured on
        self.worker_id = f"{options.app_id}@{socket.gethostname()}:{os.getpid()}"
        self._last_report = time.monotonic()
        self._channel: Any = None  # the agent's channel, once it runs
        prepare_torch()  # before the group join, not in the first window
        self.app = self._build_app()
        self.inputs = InputControl(self.app, self.stats)
        self.sink: OutputSink = sink or ProducerSink(self.app)

    # ------------------------------------------------------------------ app

    def _build_app(self) -> faust.App:
        options = self.options
        app = faust.App(options.app_id, **faust_app_settings(self.settings, options))
        inputs = app.topic(
            *self.topics.inputs, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

        async def process(stream: StreamT[bytes]) -> None:
            self._channel = stream.channel  # what the agent has at hand (see _end_batch_later)
            async for event in cast(Any, stream).noack().events():
                await self.on_event(event)

        app.agent(inputs, name="fusewatch-process")(process)
        app.timer(0.5)(self.on_timer)
        app.on_partitions_revoked.connect(cast(Any, self._on_revoked))
        app.on_partitions_assigned.connect(cast(Any, self._on_assigned))
        app.on_before_shutdown.connect(cast(Any, self._on_shutdown))
        if options.web_port is not None:

            async def health(web: Any, request: Any) -> Any:
                return web.json(self.health())

            app.page("/fusewatch/health/")(health)
        return app

    # ------------------------------------------------------------------ partitions

    def _owned(self, partition: int, loaded: tuple[Checkpoint | None] | None = None) -> OwnedPartition:
        """The partition's state, created when this worker has none yet: from the checkpoint already ``loaded``
        (a 1-tuple, its item ``None`` when the store has none), or else read from the store now."""
        owned = self.owned.get(partition)
        if owned is None:
            processor = PartitionProcessor(partition, self.config, self.topics, self.options.run_id,
                                           self.options.registry, self.digest, self.wait_clock.ns)
            checkpoint = self.store.load(partition) if loaded is None else loaded[0]
            if checkpoint is not None:
                try:
                    processor.restore(checkpoint)
                    log.info("partition %d: restored checkpoint with offsets %s", partition, checkpoint.offsets)
                except IncompatibleStateError as exc:
                    log.error("partition %d: checkpoint not restored (%s); learning starts afresh", partition, exc)
            aligner = self.config.aligner
            merger: EventTimeMerger[EventT[Any]] = EventTimeMerger(
                self.topics.inputs, aligner.source_wait_s, round(aligner.max_buffered_mb * 2**20), self.wait_clock)
            owned = OwnedPartition(processor, merger)
            self.owned[partition] = owned
        return owned

    async def _acquire(self, partition: int) -> OwnedPartition | None:
        """The state of an assigned partition, read from the store once, off the event loop: a message that arrives
        while its partition is being restored waits for that restore instead of reading the store again. ``None``
        when the partition was revoked while it was being read."""
        owned = self.owned.get(partition)
        if owned is not None:
            return owned
        await asyncio.shield(self._loading.get(partition) or self._load([partition]))
        return self.owned.get(partition)

    def _load(self, partitions: list[int]) -> asyncio.Future[None]:
        """Start reading the checkpoints of ``partitions`` in one pass of the store."""
        task = asyncio.ensure_future(self._restore(partitions))
        for partition in partitions:
            self._loading[partition] = task
        return task

    async def _restore(self, partitions: list[int]) -> None:
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(self._writer, self.store.load_many, partitions)
        finally:
            for partition in partitions:
                self._loading.pop(partition, None)
        for partition in partitions:  # one revoked meanwhile is its new owner's to restore, not this worker's
            if partition in self.assigned:
                self._owned(partition, (loaded.get(partition),))

    async def _on_assigned(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs["assigned"]
        self.assigned = {tp.partition for tp in assigned if tp.topic in self.topics.inputs}
        unread = sorted(self.assigned - set(self.owned) - set(self._loading))
        if unread:
            self._load(unread)  # the state topic: a few MB per partition, all of them in one read
        for partition in sorted(self.assigned - set(self.owned)):
            await self._acquire(partition)
        freeze_heap()
        log.info("assigned partitions %s", sorted(self.owned))

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs["revoked"]
        numbers = {tp.partition for tp in revoked if tp.topic in self.topics.inputs}
        self.assigned -= numbers
        gc.unfreeze()  # a revoked partition's state becomes garbage, and frozen cycles would never be collected
        for partition in sorted(numbers):
            owned = self.owned.pop(partition, None)
            if owned is not None:
                async with owned.lock:
                    await self._checkpoint(partition, owned)
        log.info("revoked; still own partitions %s", sorted(self.owned))

    async def _on_shutdown(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        """A stopping worker checkpoints what it processed, so whoever takes over repeats as little as possible."""
        for partition, owned in sorted(self.owned.items()):
            async with owned.lock:
                await self._checkpoint(partition, owned)
        log.info("checkpointed partitions %s on shutdown", sorted(self.owned))

    # ------------------------------------------------------------------ processing

    async def on_event(self, event: EventT[Any]) -> None:
        message = event.message
        if self.assigned and message.partition not in self.assigned:
            # in flight when its partition was revoked: the new owner reads it again from the committed offset
            self.stats["dropped_after_revoke"] += 1
            return
        # under faust's test context no partition is ever assigned: the state is made on the first message
        owned = await self._acquire(message.partition) if self.assigned else self._owned(message.partition)
        if owned is None:
            self.stats["dropped_after_revoke"] += 1
            return
        topic = self.input_topic(message.topic, message.value)
        if not await self.inputs.in_sequence(owned, topic, message.partition, message.offset):
            return
        owned.delivered[topic] = message.offset + 1
        owned.last_message = time.monotonic()
        owned.merger.add(topic, round(message.timestamp * 1000), event,
                         len(message.value or b"") + len(message.key or b""))
        async with owned.lock:
            await self._drain(message.partition, owned)
        self.inputs.flow(message.partition, owned)

    async def _drain(self, partition: int, owned: OwnedPartition) -> None:
        """Process what the merger releases (hold ``owned.lock``: processing order is the state's order), in the
        partition's open batch (one is opened, and ended once the agent would wait)."""
        has_more = self.inputs.has_more(partition, owned) if owned.merger.blocked_by() else set()
        released = owned.merger.release(has_more)
        if released and owned.batch is None:
            owned.batch = ExitStack()
            owned.batch.enter_context(owned.processor.batch())
            owned.batch_end = asyncio.ensure_future(self._end_batch_later(partition, owned))
        for event in released:
            message = event.message
            with self.wait_clock.busy():
                outgoing = owned.processor.handle(self.input_topic(message.topic, message.value), message.offset,
                                                  round(message.timestamp * 1000), message.value or b"", message.key)
            if outgoing is None:
                self.stats["skipped"] += 1
            else:
                self.stats["processed"] += 1
                await self._send(outgoing)
            if not owned.unacked:
                owned.unacked_since = time.monotonic()
            owned.unacked.append(event)
            owned.unacked_bytes += len(message.value or b"") + len(message.key or b"")
        if owned.processor.waiting >= self.options.max_batch_windows:
            await self._end_batch(owned)
        if len(owned.unacked) >= self.options.checkpoint_every and owned.unacked_bytes >= owned.state_bytes:
            await self._checkpoint(partition, owned, wait=False)

    async def _end_batch(self, owned: OwnedPartition) -> None:
        """Score the partition's open batch and send what it gave (hold ``owned.lock``)."""
        if owned.batch is not None:
            batch, owned.batch = owned.batch, None
            self.stats["batches"] += 1
            self.stats["batched_windows"] += owned.processor.waiting
            with self.wait_clock.busy():
                batch.close()
            await self._send(owned.processor.output.take())

    async def _end_batch_later(self, partition: int, owned: OwnedPartition) -> None:
        """End the batch opened just now once the agent has had no message at hand (its channel's queue empty)
        for ``batch_grace_s`` (the next fetch of a burst lands within it), or ``max_batch_age_s`` after it was
        opened (a bound on the latency)."""
        opened = time.monotonic()
        options = self.options
        while time.monotonic() - opened < options.max_batch_age_s:
            if self._agent_has_messages():
                await asyncio.sleep(0)  # the agent handles the next message meanwhile
                continue
            await asyncio.sleep(options.batch_grace_s)
            if not self._agent_has_messages():
                break
        async with owned.lock:
            if self.owned.get(partition) is owned:
                await self._end_batch(owned)

    def _agent_has_messages(self) -> bool:
        """Whether messages wait in the agent's channel (faust's conductor puts each fetch there)."""
        queue = getattr(self._channel, "queue", None) if self._channel is not None else None
        return queue is not None and not queue.empty()

    def _checkpoint_due(self, owned: OwnedPartition, now: float) -> bool:
        """Whether the timer should checkpoint the partition: ``checkpoint_interval_s`` after the oldest
        unacknowledged message once at least as many input bytes came as the last state had (so the state topic
        never carries more bytes than the inputs), and in any case after ``checkpoint_max_interval_s``."""
        if not owned.unacked or (owned.saving is not None and not owned.saving.done()):
            return False
        waited = now - owned.unacked_since
        return (waited >= self.options.checkpoint_interval_s and owned.unacked_bytes >= owned.state_bytes) or (
            waited >= self.options.checkpoint_max_interval_s)

    def input_topic(self, topic: str, value: bytes | None) -> str:
        """The input topic of a message; under faust's test context (topic ``<internal>``) from its kind byte."""
        if topic in self.topics.inputs:
            return topic
        kind = value[3] if value and len(value) > 3 and value[:2] == b"FW" else 1
        return self.topics.inputs[min(max(kind, 1), 3) - 1]

    async def _send(self, messages: list[OutgoingMessage]) -> None:
        await self.sink.send(messages)
        for message in messages:
            self.stats[message.topic.removeprefix(self.topics.prefix)] += 1

    async def _checkpoint(self, partition: int, owned: OwnedPartition, wait: bool = True) -> None:
        """Flush outputs, take the state with its offsets, write it, then acknowledge what it covers.

        ``wait=False`` (the agent and the timer) returns once the state is taken: the write (tens of MB for many
        assets, most of a second) runs on the checkpoint thread while processing goes on, and the messages are
        acknowledged when it is done; a new checkpoint is not taken while the partition's last one is being
        written. ``wait=True`` (revocation, shutdown) returns when every checkpoint of the partition is written.
        """
        await self._end_batch(owned)  # the state then covers every message handled, and its outputs are sent
        writing = owned.saving is not None and not owned.saving.done()
        if (owned.unacked or owned.processor.processed) and (wait or not writing):
            await self.sink.flush()
            with self.wait_clock.busy():
                checkpoint = owned.processor.checkpoint()
            events, owned.unacked = owned.unacked, []
            events_bytes, owned.unacked_bytes = owned.unacked_bytes, 0
            owned.state_bytes = len(checkpoint.state)
            written = asyncio.get_running_loop().run_in_executor(self._writer, self.store.save, checkpoint)
            owned.saving = asyncio.ensure_future(self._acknowledge(partition, owned, written, events, events_bytes))
        if wait and owned.saving is not None:
            await owned.saving

    async def _acknowledge(self, partition: int, owned: OwnedPartition, written: asyncio.Future[bool],
                           events: list[EventT[Any]], events_bytes: int) -> None:
        """Acknowledge ``events`` once their checkpoint is written; if the write failed, the next checkpoint
        (which covers them too) acknowledges them."""
        try:
            await written
        except Exception:
            log.exception("partition %d: writing the checkpoint failed; its messages stay unacknowledged", partition)
            if not owned.unacked:
                owned.unacked_since = time.monotonic()
            owned.unacked[:0] = events
            owned.unacked_bytes += events_bytes
            return
        for event in events:
            event.ack()
        self.stats["checkpoints"] += 1

    async def on_timer(self) -> None:
        """Release held messages of caught-up topics, run idle clocks, write due checkpoints."""
        now = time.monotonic()
        if now - self._last_report >= self.options.report_interval_s:
            self._last_report = now
            health = self.health()
            try:  # a report is worth nothing late: never hold the timer while no broker leads its partition
                await asyncio.wait_for(self._send([self.health_message(health)]), HEALTH_SEND_TIMEOUT_S)
            except TimeoutError:
                log.warning("the health report was not sent within %.0f s", HEALTH_SEND_TIMEOUT_S)
            log.info("progress partitions=%s processed=%d busy_s=%.1f windows_per_batch=%.1f held=%d held_mb=%.1f"
                     " paused=%d unacked=%d lag=%d behind_s=%s",
                     health["partitions"], self.stats["processed"], self.wait_clock.busy_s,
                     self.stats["batched_windows"] / max(1, self.stats["batches"]), sum(health["held"].values()),
                     sum(health["held_bytes"].values()) / 2**20, len(health["paused"]),
                     sum(health["unacked"].values()), sum(health["lag"].values()),
                     ",".join(f"{m}:{s:.0f}" for m, s in sorted(health["event_time_lag_s"].items())))
        due: list[tuple[float, int, OwnedPartition]] = []
        for partition, owned in list(self.owned.items()):
            async with owned.lock:
                if self.owned.get(partition) is not owned:  # revoked while we waited for the lock
                    continue
                if len(owned.merger):
                    await self._drain(partition, owned)
                    self.inputs.flow(partition, owned)
                await self.inputs.resume_stalled(partition, owned, now)
                idle_s = now - owned.last_message
                if owned.processor.clock_ns and idle_s > 1.0:
                    with self.wait_clock.busy():
                        ticked = owned.processor.tick(owned.processor.clock_ns + round(idle_s * 1e9))
                    await self._send(ticked)
                # timed from the oldest unacknowledged message, not from the last checkpoint: a burst after a
                # quiet spell is processed first and checkpointed after, instead of stalling in its middle
                if self._checkpoint_due(owned, now):
                    due.append((owned.unacked_since, partition, owned))
        # one checkpoint per tick, the longest waiting: taking a state pauses processing while it is pickled, and
        # the pauses of partitions that fall due together would add up to one long stall
        if due:
            _, partition, owned = min(due, key=lambda item: item[0])
            async with owned.lock:
                if self.owned.get(partition) is owned:
                    await self._checkpoint(partition, owned, wait=False)

    # ------------------------------------------------------------------ operations

    def health_message(self, health: dict[str, Any]) -> OutgoingMessage:
        """The report of :meth:`health` for the ``worker-health`` topic, which the sink writes to InfluxDB."""
        report = WorkerHealth(
            worker=self.worker_id, ts=time.time_ns(), partitions=health["partitions"],
            event_time_lag_s=health["event_time_lag_s"], held_bytes=sum(health["held_bytes"].values()),
            window_bytes=sum(health["window_bytes"].values()), paused=len(health["paused"]),
        )
        return OutgoingMessage(self.topics.worker_health, self.worker_id.encode(), report.model_dump_json().encode(),
                               ())

    def health(self) -> dict[str, Any]:
        """Assigned partitions; messages and bytes the merge holds (``max_held_bytes``: the most it held), bytes the
        open windows hold, paused inputs; unacknowledged messages; offset lag per input partition; per modality,
        the most any asset's stream is behind that asset's newest event (``event_time_lag_s``); the seconds spent
        scoring and taking checkpoints since the start (``busy_s``); counters."""
        lag: dict[str, int] = {}
        for partition, owned in self.owned.items():
            for topic in self.topics.inputs:
                highwater = self.app.consumer.highwater(TP(topic, partition))
                delivered = owned.next_offset(topic)
                if highwater is not None and highwater >= 0:
                    lag[f"{topic}[{partition}]"] = max(0, highwater - delivered)
        event_time_lag: dict[str, float] = {}
        for owned in self.owned.values():
            for modality, seconds in owned.processor.processor.aligner.lag_s().items():
                event_time_lag[modality] = max(event_time_lag.get(modality, 0.0), round(seconds, 3))
        return {
            "status": "ok",
            "partitions": sorted(self.owned),
            "held": {p: len(o.merger) for p, o in self.owned.items()},
            "held_bytes": {p: o.merger.bytes for p, o in self.owned.items()},
            "max_held_bytes": {p: o.merger.max_bytes_seen for p, o in self.owned.items()},
            "window_bytes": {p: o.processor.processor.aligner.held_bytes() for p, o in self.owned.items()},
            "paused": sorted(f"{topic}[{p}]" for p, o in self.owned.items() for topic in o.merger.paused),
            "unacked": {p: len(o.unacked) for p, o in self.owned.items()},
            "lag": lag,
            "event_time_lag_s": event_time_lag,
            "busy_s": round(self.wait_clock.busy_s, 3),
            "counters": dict(self.stats),
        }
