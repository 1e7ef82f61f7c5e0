"""The embedded runner: the plant simulator → in-process bus → stream processor → sinks, in one command.

The simulator runs in a child process (the plant is a separate machine in real life, and it leaves this
process's core to the models); it sends encoded messages in batches through a bounded queue, so a slow
consumer applies backpressure instead of buffering the whole run. The runner's clock is the stream's own
event time (the newest event seen), so idle-asset timeouts behave the same at any replay speed.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fusewatch.codec import encode
from fusewatch.topics import Topics
from streams.bus import InProcessBus
from streams.processor import StreamProcessor

Batch = list[tuple[str, bytes, bytes, int]]  # (topic, key, value, event time ns)
_DONE = "done"


@dataclass(frozen=True)
class EmbeddedResult:
    """What one embedded run did."""

    steps: int
    messages: int
    windows: int
    wall_seconds: float


def _simulate(sim_config: Any, topics: Topics, batch_steps: int, out: Any) -> None:
    """Child-process body: run the simulator and send encoded batches of ``batch_steps`` steps."""
    from connectors.simulator import PlantSimulator

    batch: Batch = []
    count = 0
    try:
        for step in PlantSimulator(sim_config).steps():
            batch.extend((topics.for_event(e), e.asset_id.encode(), encode(e), e.ts) for e in step)
            count += 1
            if count % batch_steps == 0:
                out.put((count, batch))
                batch = []
        out.put((count, batch))
        out.put(_DONE)
    except BaseException as exc:  # report, never hang the parent
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def simulated_batches(sim_config: Any, topics: Topics, batch_steps: int = 10) -> Iterator[tuple[int, Batch]]:
    """Yield ``(steps done, messages)`` from a simulator running in a child process."""
    context = mp.get_context("spawn")
    channel = context.Queue(maxsize=8)
    process = context.Process(target=_simulate, args=(sim_config, topics, batch_steps, channel), daemon=True)
    process.start()
    try:
        while True:
            try:
                item = channel.get(timeout=60)
            except queue_module.Empty:
                if not process.is_alive():
                    raise RuntimeError("the simulator process died without a word") from None
                continue
            if item == _DONE:
                break
            if item[0] == "error":
                raise RuntimeError(f"the simulator failed: {item[1]}")
            yield item
    finally:
        if process.is_alive():
            process.terminate()
        process.join(timeout=10)


class EmbeddedRunner:
    """Feeds batches through the bus into a :class:`StreamProcessor`."""

    def __init__(self, processor: StreamProcessor, flush: Callable[[], None] | None = None) -> None:
        self.processor = processor
        self.bus = InProcessBus()
        self.now_ns = 0
        self._flush = flush or (lambda: None)

    def publish(self, topic: str, key: bytes, value: bytes, ts_ns: int) -> None:
        """Publish one message; the runner's clock follows the newest event time."""
        self.bus.publish(topic, key, value)
        self.now_ns = max(self.now_ns, ts_ns)

    def pump(self) -> int:
        """Process every pending message, then expire idle assets; returns how many messages."""
        count = 0
        for message in self.bus.drain():
            self.processor.handle(message.value, message.topic, message.partition, message.offset, self.now_ns)
            count += 1
        self.processor.tick(self.now_ns)
        return count

    def run(
        self, batches: Iterable[tuple[int, Batch]], on_progress: Callable[[int], None] | None = None
    ) -> EmbeddedResult:
        """Consume every batch, flush the aligner at the end, and return the counts."""
        started = time.perf_counter()
        steps = messages = 0
        for steps, batch in batches:
            for topic, key, value, ts in batch:
                self.publish(topic, key, value, ts)
            messages += self.pump()
            self._flush()
            if on_progress is not None:
                on_progress(steps)
        self.processor.flush()
        self._flush()
        return EmbeddedResult(steps, messages, self.processor.stats.scores, time.perf_counter() - started)
