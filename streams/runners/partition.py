"""The stream state of one partition number, as a worker owns it.

Partition N of the three co-partitioned input topics carries the same assets; the worker that is assigned it
keeps one :class:`PartitionProcessor`: a :class:`~streams.processor.StreamProcessor` for those assets plus, per
input topic, the next offset not yet processed. Messages below those offsets are already in the state (after
a checkpoint was restored) and are skipped, so nothing is counted twice.

The processor's clock is the newest record timestamp of the partition (event time), as in the embedded runner.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from fusewatch.core.assets import AssetRegistry
from fusewatch.core.events import Alert, DeadLetter
from fusewatch.core.outputs import OutgoingMessage as OutgoingMessage
from fusewatch.core.outputs import output_message
from fusewatch.core.topics import Topics
from streams.checkpoint import Checkpoint
from streams.pipeline import ScoredWindow
from streams.processor import StreamProcessor
from streams.settings import StreamSettings

log = logging.getLogger(__name__)


@dataclass
class OutputBuffer:
    """Collects the processor's results as messages for the scores, alerts and dead-letter topics
    (:func:`~fusewatch.core.outputs.output_message`: the encoding the Kafka output sink uses too)."""

    topics: Topics
    messages: list[OutgoingMessage] = field(default_factory=list)

    def score(self, scored: ScoredWindow) -> None:
        self.messages.append(output_message(scored.score, self.topics))

    def alert(self, alert: Alert) -> None:
        self.messages.append(output_message(alert, self.topics))

    def dead_letter(self, letter: DeadLetter) -> None:
        self.messages.append(output_message(letter, self.topics))

    def take(self) -> list[OutgoingMessage]:
        messages, self.messages = self.messages, []
        return messages


class PartitionProcessor:
    """A stream processor for the assets of one partition number, with the offsets its state covers."""

    def __init__(
        self,
        partition: int,
        config: StreamSettings,
        topics: Topics,
        run_id: str,
        registry: AssetRegistry | None,
        config_digest: str,
        processing_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.partition = partition
        self.config_digest = config_digest
        self.output = OutputBuffer(topics)
        self.registry = registry
        self.processor = StreamProcessor(config, self.output, run_id=run_id, assets=registry, topics=topics,
                                         processing_clock=processing_clock)
        self.offsets: dict[str, int] = {}
        self.clock_ns = 0
        self.processed = 0

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from a checkpoint of this partition."""
        if checkpoint.config_digest != self.config_digest:
            log.warning("partition %d: checkpoint made with another configuration; its models are kept",
                        self.partition)
        self.clock_ns, snapshot = pickle.loads(checkpoint.state)
        self.processor.restore(snapshot)
        self.offsets = dict(checkpoint.offsets)

    def checkpoint(self) -> Checkpoint:
        """The state now, with the offsets it covers."""
        state = pickle.dumps((self.clock_ns, self.processor.snapshot()), protocol=5)
        return Checkpoint(self.partition, dict(self.offsets), self.config_digest, state)

    def handle(
        self, topic: str, offset: int, timestamp_ms: int, raw: bytes, key: bytes | None = None
    ) -> list[OutgoingMessage] | None:
        """Process one message; ``None`` when its offset is already in the state (skipped)."""
        if offset < self.offsets.get(topic, 0):
            return None
        self.clock_ns = max(self.clock_ns, timestamp_ms * 1_000_000)
        process_message(self.processor, self.registry, topic, self.partition, offset, self.clock_ns, raw, key)
        self.offsets[topic] = offset + 1
        self.processed += 1
        return self.output.take()

    def batch(self) -> AbstractContextManager[None]:
        """Score the windows closed inside the block together when it ends (:meth:`StreamProcessor.batch`); its
        results are then in :attr:`output`."""
        return self.processor.batch()

    @property
    def waiting(self) -> int:
        """Windows closed in the open batch, not yet scored."""
        return self.processor.waiting

    def tick(self, now_ns: int) -> list[OutgoingMessage]:
        """Close idle assets' windows on a clock that runs on while no message comes."""
        self.processor.tick(now_ns)
        return self.output.take()



def process_message(processor: StreamProcessor, registry: AssetRegistry | None, topic: str, partition: int,
                    offset: int, clock_ns: int, raw: bytes, key: bytes | None) -> None:
    """Process one input message as a worker does: a key outside the registry (when there is one) and a defect
    in processing both become dead letters, the stream goes on; then the idle clock runs to ``clock_ns``."""
    try:
        if registry is not None and (key is None or key.decode("utf-8", "replace") not in registry):
            shown = "none" if key is None else repr(key[:64].decode("utf-8", "replace"))
            processor.dead_letter(raw, topic, partition, offset, clock_ns,
                                  f"unknown asset: key {shown} is not in the asset registry")
        else:
            processor.handle(raw, topic, partition, offset, clock_ns)
        processor.tick(clock_ns)
    except Exception as exc:  # a defect must not stop the stream: the message becomes a dead letter
        log.exception("stream error topic=%s partition=%d offset=%d", topic, partition, offset)
        processor.dead_letter(raw, topic, partition, offset, clock_ns, f"error: {type(exc).__name__}: {exc}")
