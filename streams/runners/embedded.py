"""The embedded runner: messages → in-process bus → stream processor, in one or several worker processes.

:class:`EmbeddedRunner` is the single-process core: producers ``publish`` encoded messages onto the bus,
``pump`` feeds them through a :class:`~streams.processor.StreamProcessor`. The runner's clock is the stream's
own event time (the newest event seen), so idle-asset timeouts behave the same at any replay speed.

:func:`run_partitioned` scales it over processes the way Kafka consumer groups do: each worker process owns a
share of the assets (its "partitions") and runs its own source, bus and processor; results come back to the
parent, which writes the sinks. Since no model state is shared between assets, the scores are the same for
any number of workers.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue as queue_module
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fusewatch.core.errors import WorkerFailedError
from fusewatch.core.events import Alert, DeadLetter, MaintenanceLog
from streams.pipeline import ScoredWindow
from streams.processor import StreamProcessor
from streams.runners.bus import InProcessBus

log = logging.getLogger(__name__)


class EmbeddedRunner:
    """Feeds published messages through the bus into a :class:`StreamProcessor`."""

    def __init__(self, processor: StreamProcessor) -> None:
        self.processor = processor
        self.bus = InProcessBus()
        self.now_ns = 0

    def publish(self, topic: str, key: bytes, value: bytes, ts_ns: int) -> None:
        """Publish one message; the runner's clock follows the newest event time."""
        self.bus.publish(topic, key, value)
        self.now_ns = max(self.now_ns, ts_ns)

    def pump(self) -> int:
        """Process every pending message, then expire idle assets, scoring the windows closed as one batch;
        returns how many messages."""
        count = 0
        with self.processor.batch():  # the windows the pending messages close are scored together
            for message in self.bus.drain():
                self.processor.handle(message.value, message.topic, message.partition, message.offset, self.now_ns)
                count += 1
            self.processor.tick(self.now_ns)
        return count

    def finish(self) -> None:
        """Process what is pending, then close every open window (end of a finite stream)."""
        self.pump()
        self.processor.flush()


@dataclass
class CollectingOutput:
    """An output that keeps results until they are taken (to ship them to another process).

    ``logs``: maintenance-log entries the job fed in, when its parent stores them too (InfluxDB annotations).
    """

    scored: list[ScoredWindow] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    logs: list[MaintenanceLog] = field(default_factory=list)

    def score(self, scored: ScoredWindow) -> None:
        self.scored.append(scored)

    def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def dead_letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    def take(self) -> tuple[list[ScoredWindow], list[Alert], list[DeadLetter]]:
        """Return and forget everything collected so far."""
        taken = (self.scored, self.alerts, self.letters)
        self.scored, self.alerts, self.letters = [], [], []
        return taken


@dataclass(frozen=True)
class WorkerReport:
    """A batch of results from one worker; ``final`` carries its counters once it has finished."""

    worker: int
    progress: int
    scored: list[ScoredWindow]
    alerts: list[Alert]
    letters: list[DeadLetter]
    final: dict[str, Any] | None = None
    logs: list[MaintenanceLog] = field(default_factory=list)


class Reporter:
    """What a worker job uses to send its results to the parent."""

    def __init__(self, worker: int, channel: Any) -> None:
        self.worker = worker
        self._channel = channel

    def send(self, progress: int, output: CollectingOutput, final: dict[str, Any] | None = None) -> None:
        """Ship what ``output`` collected; stop this worker if the parent is gone (nobody would read it)."""
        scored, alerts, letters = output.take()
        logs, output.logs = output.logs, []
        report = WorkerReport(self.worker, progress, scored, alerts, letters, final, logs)
        parent = mp.parent_process()
        while True:
            if parent is not None and not parent.is_alive():
                raise SystemExit("the parent process is gone")
            try:
                self._channel.put(report, timeout=5.0)
                return
            except queue_module.Full:
                continue


WorkerJob = Callable[[int, int, Reporter], None]
"""``job(worker index, worker count, reporter)``: a picklable module-level function run in each worker."""


def _run_job(job: WorkerJob, index: int, count: int, channel: Any) -> None:
    try:
        job(index, count, Reporter(index, channel))
    except BaseException:  # report, never leave the parent waiting
        channel.put(("error", index, traceback.format_exc()))


def run_partitioned(job: WorkerJob, workers: int) -> Iterator[WorkerReport]:
    """Run ``job`` in ``workers`` processes and yield their reports until each has sent its final one."""
    context = mp.get_context("spawn")
    channel = context.Queue(maxsize=64)
    processes = [
        context.Process(target=_run_job, args=(job, index, workers, channel), daemon=True) for index in range(workers)
    ]
    for process in processes:
        process.start()
    running = set(range(workers))
    try:
        while running:
            try:
                item = channel.get(timeout=1.0)
            except queue_module.Empty:
                dead = [i for i in running if not processes[i].is_alive()]
                if dead:
                    raise WorkerFailedError(f"worker {dead[0]} died without reporting (exit code "
                                       f"{processes[dead[0]].exitcode})") from None
                continue
            if isinstance(item, tuple) and item[0] == "error":
                log.error("worker %d failed:\n%s", item[1], item[2])
                raise WorkerFailedError(f"worker {item[1]} failed: {item[2].strip().splitlines()[-1]}")
            if item.final is not None:
                running.discard(item.worker)
            yield item
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=10)
