"""The stream processor shared by every runner: raw message in, scores, alerts and dead letters out.

``handle`` decodes and validates one message, aligns it, scores the windows it closes, and runs the alert
policy. Inside ``with processor.batch():`` the windows closed by the block's messages (and ticks) are scored
together when the block ends, as one batch (:meth:`Pipeline.process_batch`): the same scores and alerts as
window by window, with the stages' work done for many windows at once. Runners open a batch per poll of their
consumer (the worker), per pump (the embedded runner) or per plant minute (the backtest).

Nothing it is given is lost: a message that cannot be decoded or validated, or that arrives later than the
allowed lateness, becomes a :class:`~fusewatch.core.events.DeadLetter` with the reason, and processing
goes on. Duplicates are dropped and counted. Camera frames are personal-data-sensitive: a dead letter from
the frames topic keeps the source topic, partition and offset but not the bytes.
"""

from __future__ import annotations

import base64
import logging
import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fusewatch.core.assets import AssetRegistry
from fusewatch.core.codec import decode, decode_pixels
from fusewatch.core.errors import IncompatibleStateError, InvalidEventError
from fusewatch.core.events import Alert, CameraFrame, DeadLetter, MaintenanceLog, SimilarIncident
from fusewatch.core.timeutil import format_time
from fusewatch.core.topics import Topics
from models.text import effective_kind
from streams.alerts import AlertPolicy
from streams.aligner import AlignedWindow, Aligner
from streams.pipeline import STATE_VERSION, Pipeline, ScoredWindow
from streams.settings import StreamSettings

log = logging.getLogger(__name__)


class Output(Protocol):
    """Where the processor's results go (sinks, topics)."""

    def score(self, scored: ScoredWindow) -> None: ...

    def alert(self, alert: Alert) -> None: ...

    def dead_letter(self, letter: DeadLetter) -> None: ...


@dataclass
class ProcessorStats:
    """Counters for operators: messages in, windows scored, alerts raised, dead letters by reason."""

    messages: int = 0
    scores: int = 0
    alerts: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)


class StreamProcessor:
    """Decode → align → score → alert, for one process's share of the assets."""

    def __init__(
        self,
        config: StreamSettings,
        output: Output,
        run_id: str = "live",
        assets: AssetRegistry | None = None,
        topics: Topics | None = None,
        wall_clock: Callable[[], int] = time.time_ns,
        processing_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.topics = topics or Topics()
        self.output = output
        self.run_id = run_id
        self.processing_clock = processing_clock  # modality idleness (see streams.aligner)
        self.aligner = Aligner(config.aligner, clock=processing_clock)
        self.pipeline = Pipeline(config.models, run_id=run_id, assets=assets)
        self.alerts = AlertPolicy(config.alerts, run_id=run_id)
        self.stats = ProcessorStats()
        self.wall_clock = wall_clock
        self.max_future_ns = config.aligner.ns("max_future_s")
        self._closed: list[tuple[AlignedWindow, _Origin | None]] = []  # windows waiting for the batch's end
        self._batch_depth = 0

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Score the windows closed inside the block together, when it ends (blocks may nest: the outermost
        counts). A window that cannot be scored becomes a dead letter of the message that closed it."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if not self._batch_depth:
                self._score_closed()

    @property
    def waiting(self) -> int:
        """Windows closed inside the open batch, not yet scored."""
        return len(self._closed)

    def handle(self, raw: bytes, topic: str, partition: int, offset: int, now_ns: int) -> None:
        """Process one raw input message; ``now_ns`` is the runner's clock for idle detection."""
        self.stats.messages += 1
        try:
            event = decode(raw)
            pixels: np.ndarray | None = decode_pixels(event) if isinstance(event, CameraFrame) else None
            ahead = event.ts - self.wall_clock()
            if ahead > self.max_future_ns:
                raise InvalidEventError("ts", f"{format_time(event.ts)} is {ahead / 3.6e12:.1f} h ahead of the clock")
        except InvalidEventError as exc:
            self.dead_letter(raw, topic, partition, offset, now_ns, f"invalid: {exc}")
            return
        if isinstance(event, MaintenanceLog) and event.action is not None:
            self._operator_action(event)
            return
        result = self.aligner.add(event, pixels, now_ns)
        if result.outcome == "late":
            self.dead_letter(raw, topic, partition, offset, now_ns, "late")
        self._close(result.windows, _Origin(raw, topic, partition, offset, now_ns))

    def _operator_action(self, entry: MaintenanceLog) -> None:
        """An operator's instruction to the alert policy (not a log entry the models read), applied after the
        windows closed before it are scored."""
        self._score_closed()
        if entry.action == "maintenance" and entry.until is not None:
            self.alerts.add_maintenance_window(entry.asset_id, entry.ts, entry.until)
            log.info("maintenance window for %s from %s to %s", entry.asset_id, format_time(entry.ts),
                     format_time(entry.until))
        elif entry.action == "acknowledge":
            acknowledged = self.alerts.acknowledge(entry.asset_id, entry.ts)
            if acknowledged is not None:
                self.stats.alerts += 1
                self.output.alert(acknowledged)

    def tick(self, now_ns: int) -> None:
        """Close windows of idle assets (call regularly with the runner's clock)."""
        self._close(self.aligner.expire_idle(now_ns), None)

    def flush(self) -> None:
        """Close and score every pending window (end of a finite stream)."""
        self._close(self.aligner.flush(), None)

    def snapshot(self) -> bytes:
        """The aligner, model and alert state as bytes (for checkpoints); the output and lookups are not kept.
        Windows waiting for the end of a batch are scored first: the state covers every message handled."""
        self._score_closed()
        return pickle.dumps((self.aligner, self.pipeline, self.alerts, self.stats), protocol=5)

    def restore(self, snapshot: bytes) -> None:
        """Replace the state by one taken with :meth:`snapshot` (by this or another process).

        Raises :class:`IncompatibleStateError` (and keeps the current state) when the snapshot's learned state has
        another layout version than this code's (``STATE_VERSION`` in :mod:`streams.pipeline`), names classes this
        version does not have, or was learned with another model bundle than this processor's.
        """
        try:
            aligner, pipeline, alerts, stats = pickle.loads(snapshot)
        except (AttributeError, ImportError, pickle.UnpicklingError) as exc:
            raise IncompatibleStateError(f"model state of another fusewatch version ({exc})") from None
        version = getattr(pipeline, "state_version", 1)
        if version != STATE_VERSION:
            raise IncompatibleStateError(f"model state version {version}, this version reads {STATE_VERSION}")
        bundle, expected = getattr(pipeline, "bundle_version", None), self.pipeline.bundle_version
        if bundle != expected:
            raise IncompatibleStateError(f"model state learned with bundle {bundle or '(none)'}, this processor uses"
                                         f" {expected or '(none)'}")
        self.aligner, self.pipeline, self.alerts, self.stats = aligner, self.pipeline.adopt(pipeline), alerts, stats
        self._closed = []  # windows of the state replaced
        self.aligner.use_clock(self.processing_clock)

    def _close(self, windows: list[AlignedWindow], origin: _Origin | None) -> None:
        """Windows just closed: scored now, or at the end of the open batch."""
        if windows:
            self._closed.extend((window, origin) for window in windows)
            if not self._batch_depth:
                self._score_closed()

    def _score_closed(self) -> None:
        """Score the closed windows as one batch, in order; a window whose scoring fails becomes a dead letter of
        the message that closed it (logged and counted, when an idle clock or the end of the stream closed it),
        and the batch goes on with the windows after it."""
        closed, self._closed = self._closed, []
        while closed:
            done = 0
            try:
                for scored in self.pipeline.process_batch([window for window, _ in closed], self._may_learn):
                    self._scored(scored)
                    done += 1
                return
            except Exception as exc:  # a defect must not stop the stream
                if done >= len(closed):  # the stages' learning after the last window failed: every score is out
                    log.exception("learning failed after the last window of a batch")
                    self.stats.dead_letters["error"] += 1
                    return
                window, origin = closed[done]
                log.exception("scoring failed asset=%s window_end=%s", window.asset_id, format_time(window.end_ns))
                if origin is not None:
                    self.dead_letter(origin.raw, origin.topic, origin.partition, origin.offset, origin.now_ns,
                                     f"error: {type(exc).__name__}: {exc}")
                else:
                    self.stats.dead_letters["error"] += 1
                closed = closed[done + 1:]

    def _may_learn(self, window: AlignedWindow) -> bool:
        """Just before a window is scored: a repair written in it closes the asset's alert; it learns unless the
        asset is (still) alerting."""
        closed = self.alerts.close_on_repair(window.asset_id, window.end_ns, _kinds_written_in(window))
        if closed is not None:
            self.stats.alerts += 1
            self.output.alert(closed)
        return not self.alerts.is_alerting(window.asset_id)

    def _scored(self, scored: ScoredWindow) -> None:
        """A window's score out, then the alert policy's transitions (an opened alert with similar incidents)."""
        self.stats.scores += 1
        self.output.score(scored)
        for alert in self.alerts.update(scored.score):
            if alert.transition == "opened":
                similar = [SimilarIncident(similarity=match.similarity, **match.summary)
                           for match in self.pipeline.similar_incidents(scored)]
                alert = alert.model_copy(update={"similar_incidents": similar})
            self.stats.alerts += 1
            self.output.alert(alert)

    def dead_letter(self, raw: bytes, topic: str, partition: int, offset: int, now_ns: int, reason: str) -> None:
        """Send a message that cannot be processed to the dead letters, with the reason."""
        self.stats.dead_letters[reason.split(":", 1)[0]] += 1
        log.warning("dead letter topic=%s partition=%d offset=%d reason=%s", topic, partition, offset, reason)
        withhold = self.topics.carries_frames(topic)
        letter = DeadLetter(
            source_topic=topic,
            partition=partition,
            offset=offset,
            error=reason + (" (frame bytes withheld; see the source offset)" if withhold else ""),
            raw_base64="" if withhold else base64.b64encode(raw).decode("ascii"),
            ts=now_ns,
        )
        self.output.dead_letter(letter)


def _kinds_written_in(window: AlignedWindow) -> Iterator[str]:
    """The effective kinds of the log entries written during the window (lazily)."""
    return (effective_kind(log.text, log.kind) for log, _ in window.logs if window.start_ns <= log.ts < window.end_ns)


@dataclass(frozen=True, slots=True)
class _Origin:
    """The message that closed a window (its dead letter, should the window's scoring fail)."""

    raw: bytes
    topic: str
    partition: int
    offset: int
    now_ns: int
