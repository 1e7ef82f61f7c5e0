"""Backtest: score recorded history with a candidate configuration under its own run id, and measure it.

:func:`run_backtest` feeds every recorded message's bytes, in replay order, through the stream processor as a
worker's partition does (:func:`streams.runners.partition.process_message`): one
:class:`~streams.processor.StreamProcessor` per partition number (the co-partitioned input topics carry the same
assets in partition N), its clock the newest record timestamp of the partition, messages of assets outside the
registry and messages the processor fails on turned into dead letters; the windows of one plant minute (record
time) are scored as one batch, as a worker scores a poll's. Dead letters keep the recorded partition and
offset. Each scored window is kept as a compact trace point and as the record the method comparison replays
(:mod:`fusewatch.evaluation.methods`), so the modality ablation (every single modality and every fusion method
under the same alert settings) comes with the run.

:func:`summarize` measures the run against its labels (:mod:`fusewatch.evaluation`): one row per method
with the keys of ``fusewatch evaluate``'s rows (the first, ``configured``, is the run itself: its own fused
scores and alert transitions), per-asset and per-event details.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from fusewatch.config import FusewatchConfig, to_toml
from fusewatch.core.assets import AssetRegistry
from fusewatch.core.events import Alert, DeadLetter, Score
from fusewatch.core.history import RecordedMessage
from fusewatch.core.timeutil import NS_PER_HOUR, NS_PER_MS, format_time
from fusewatch.core.topics import Topics
from fusewatch.evaluation.labels import LabelledEvent, Labels, LogLabels
from fusewatch.evaluation.methods import WindowRecord, first_alertable_hours, method_row, record_of, replay_methods
from fusewatch.evaluation.outcomes import alert_outcomes, asset_rows, opened_by_asset
from fusewatch.scenarios.summary import ScenarioSummary
from streams.checkpoint import config_digest
from streams.pipeline import ScoredWindow
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput
from streams.runners.partition import process_message

CONFIGURED = "configured"
"""The row of the run itself: its own fused scores and alert transitions."""


@dataclass(frozen=True, slots=True)
class TracePoint:
    """One scored window of the run: what its trace and the windows file keep."""

    asset_id: str
    window_end: int
    fused: float
    leading: str | None
    warmup: bool
    run_id: str


@dataclass
class BacktestRun:
    """What a backtest produced: scores (compact), alerts, dead letters, labels and counts."""

    run_id: str
    config: FusewatchConfig
    source: str
    windows: list[TracePoint] = field(default_factory=list)
    records: list[WindowRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    events: list[LabelledEvent] = field(default_factory=list)
    labels_from: str = "maintenance logs"
    messages: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    requested: tuple[int | None, int | None] = (None, None)
    wall_seconds: float = 0.0
    logs: LogLabels = field(default_factory=LogLabels)

    def label_with(self, labels: Sequence[LabelledEvent] | None, description: str = "labels file") -> None:
        """Set the events: ``labels`` (e.g. from a labels file), or ``None`` for the failure log entries; a
        repair entry after a failure gives the event its restart. Labelling again needs no new scoring."""
        if labels is None:
            horizon = int(self.config.models.label_horizon_hours * NS_PER_HOUR)
            self.events, self.labels_from = self.logs.with_restarts(self.logs.events(horizon)), "maintenance logs"
        else:
            self.events, self.labels_from = self.logs.with_restarts(labels), description


class _Partition:
    """The processor of one partition number, its clock the newest record timestamp it was given."""

    def __init__(self, config: FusewatchConfig, run_id: str, registry: AssetRegistry | None) -> None:
        self.output = CollectingOutput()
        self.processor = StreamProcessor(config.streams, self.output, run_id=run_id, assets=registry)
        self.registry = registry
        self.clock_ns = 0

    def handle(self, message: RecordedMessage, topic: str) -> None:
        """As the worker's partition does: dead letters carry the recorded partition and offset."""
        self.clock_ns = max(self.clock_ns, message.timestamp_ms * NS_PER_MS)
        process_message(self.processor, self.registry, topic, message.partition, message.offset, self.clock_ns,
                        message.value, message.key)


def run_backtest(
    messages: Iterable[RecordedMessage],
    config: FusewatchConfig,
    run_id: str,
    registry: AssetRegistry | None = None,
    labels: Sequence[LabelledEvent] | None = None,
    progress: bool = True,
    total: int | None = None,
    *,
    source: str = "recorded messages",
    requested: tuple[int | None, int | None] = (None, None),
    labels_from: str = "labels file",
    on_scored: Callable[[ScoredWindow], None] | None = None,
) -> BacktestRun:
    """Score ``messages`` (replay order) under ``run_id``; ``labels`` replace the labels from the logs.

    ``source`` describes the history, ``requested`` is the time range asked for and ``labels_from`` says where
    ``labels`` come from (for the report); ``on_scored`` is given every scored window (fleet training reads them).
    """
    started = time.perf_counter()
    topics = Topics()
    topic_of = {"vibration": topics.vibration, "frames": topics.frames, "maintenance-logs": topics.maintenance_logs}
    run = BacktestRun(run_id, config, source, requested=requested)
    partitions: dict[int, _Partition] = {}
    logs = run.logs
    minute: int | None = None
    batch = ExitStack()  # the windows of one plant minute (record time) are scored as one batch
    batched: set[int] = set()
    with tqdm(messages, total=total, unit="msg", desc="backtest", disable=not progress) as bar, batch:
        for message in bar:
            if message.timestamp_ms // 60_000 != minute:
                minute = message.timestamp_ms // 60_000
                batch.close()
                batched.clear()
                for open_partition in partitions.values():
                    _collect(run, open_partition.output, on_scored)
            partition = partitions.get(message.partition)
            if partition is None:
                partition = partitions[message.partition] = _Partition(config, run_id, registry)
            if message.partition not in batched:
                batch.enter_context(partition.processor.batch())
                batched.add(message.partition)
            partition.handle(message, topic_of[message.kind])
            if registry is None or (message.key or b"").decode("utf-8", "replace") in registry:
                logs.add(message)
            run.messages += 1
            run.first_ms = message.timestamp_ms if run.first_ms is None else min(run.first_ms, message.timestamp_ms)
            run.last_ms = message.timestamp_ms if run.last_ms is None else max(run.last_ms, message.timestamp_ms)
            if run.messages % 1000 == 0:
                bar.set_postfix(windows=len(run.windows), alerts=len(run.alerts), refresh=False)
    for partition in partitions.values():
        partition.processor.flush()
        _collect(run, partition.output, on_scored)
        run.dead_letter_reasons.update(partition.processor.stats.dead_letters)
    run.label_with(labels, labels_from)
    run.wall_seconds = round(time.perf_counter() - started, 3)
    return run


def _collect(run: BacktestRun, output: CollectingOutput, on_scored: Callable[[ScoredWindow], None] | None) -> None:
    scored, alerts, letters = output.take()
    for window in scored:
        if on_scored is not None:
            on_scored(window)
        score: Score = window.score
        run.windows.append(TracePoint(score.asset_id, score.window_end, score.fused, score.leading, score.warmup,
                                      score.run_id))
        run.records.append(record_of(window))
    run.alerts += alerts
    run.dead_letters += letters


@dataclass
class Evaluation:
    """A run measured: the summary document and every method's per-window scores (for the windows file)."""

    summary: dict[str, Any]
    scores: dict[str, dict[str, list[tuple[int, float]]]]


def summarize(run: BacktestRun) -> Evaluation:
    """Measure the run and its modality ablation against its labels; the summary has evaluate's layout."""
    started = time.perf_counter()
    labels = Labels(run.events)
    series, stacking = replay_methods(run.records, run.config.models, run.config.alerts)
    own: dict[str, list[tuple[int, float]]] = {}
    for point in sorted(run.windows, key=lambda p: (p.window_end, p.asset_id)):
        own.setdefault(point.asset_id, []).append((point.window_end, float("nan") if point.warmup else point.fused))
    opened = opened_by_asset(run.alerts)
    transitions = Counter(alert.asset_id for alert in run.alerts)
    scores = {CONFIGURED: own, **{method: data.scores for method, data in series.items()}}
    openings = {CONFIGURED: opened, **{method: data.opened for method, data in series.items()}}
    summary = ScenarioSummary("backtest", 0)
    lead_times: dict[str, Any] = {}
    for method in scores:
        row = method_row(method, scores[method], openings[method], labels)
        lead_times[method] = row.pop("lead_times_hours")
        summary.add_row(row.pop("method"), **row)
    outcomes, _ = alert_outcomes(labels, opened)
    first, last = run.first_ms, run.last_ms
    summary.details.update({
        "run_id": run.run_id,
        "config_digest": config_digest(to_toml(run.config)),
        "configured_fusion": run.config.models.fusion,
        "source": run.source,
        "labels": run.labels_from,
        "label_horizon_hours": run.config.models.label_horizon_hours,
        "time_range": {"from": _iso(run.requested[0]), "to": _iso(run.requested[1]),
                       "first_message": _iso(None if first is None else first * NS_PER_MS),
                       "last_message": _iso(None if last is None else last * NS_PER_MS)},
        "messages": run.messages,
        "windows": len(run.windows),
        "dead_letters": {"count": len(run.dead_letters), "by_reason": dict(sorted(run.dead_letter_reasons.items()))},
        "alert_transitions": len(run.alerts),
        "alerts_opened": {method: sum(len(v) for v in openings[method].values()) for method in scores},
        "lead_times_hours": lead_times,
        "assets": asset_rows(own, opened, transitions, labels),
        "events": [o.as_dict() for o in outcomes],
        "stacking": stacking,
        "first_alertable_hours": first_alertable_hours(run.records),
        "wall_seconds": round(run.wall_seconds + time.perf_counter() - started, 3),
    })
    document = summary.as_dict()
    document["seed"] = None  # a backtest replays recorded data: nothing is drawn
    return Evaluation(document, scores)


def _iso(ns: int | None) -> str | None:
    return None if ns is None else format_time(ns)
