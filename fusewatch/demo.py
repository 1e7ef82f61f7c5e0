"""``fusewatch demo``: a simulated plant scored end to end on this machine, with no services.

Each worker process simulates its share of the assets (as each Kafka consumer owns its partitions), publishes
the encoded messages onto its in-process bus and runs the stream processor over them; the parent hands each
batch of scores, alerts, dead letters and log entries to the fan-out the sink agent uses too
(:class:`~connectors.sinks.fanout.FanOut`: SQLite, InfluxDB with ``influx``, the webhook outbox; docs/sinks.md),
then writes the HTML report and the summary against the simulator's ground truth.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from connectors.report import write_report
from connectors.sinks.base import Record, Sink
from connectors.sinks.fanout import Backoff, FanOut
from connectors.sinks.influx.writers import InfluxSink
from connectors.sinks.sqlite import SqliteSink
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from connectors.webhooks.delivery import Endpoint, WebhookSender
from fusewatch.config import FusewatchConfig
from fusewatch.core.assets import AssetRegistry
from fusewatch.core.codec import encode
from fusewatch.core.events import MaintenanceLog
from fusewatch.core.topics import Topics
from fusewatch.evaluation.outcomes import summarize_run
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner, Reporter, run_partitioned


class Plant(Protocol):
    """What a worker job needs of a plant: its assets, their registry, and the events minute by minute."""

    @property
    def asset_ids(self) -> list[str]: ...

    def asset_registry(self) -> AssetRegistry: ...

    def steps(self, asset_ids: Sequence[str]) -> Iterator[list[Any]]: ...


def simulate_and_score(
    plant_factory: Callable[[], Plant],
    config: FusewatchConfig,
    run_id: str,
    report_every: int,
    worker: int,
    workers: int,
    reporter: Reporter,
) -> None:
    """Worker job: generate this worker's share of the assets and score it through the in-process bus.

    ``plant_factory`` (picklable, e.g. ``functools.partial(PlantSimulator, config)``) builds the plant in the
    worker, so only its settings cross the process boundary.
    """
    plant = plant_factory()
    share = plant.asset_ids[worker::workers]
    output = CollectingOutput()
    processor = StreamProcessor(config.streams, output, run_id=run_id, assets=plant.asset_registry())
    runner = EmbeddedRunner(processor)
    topics = Topics()
    steps = 0
    for steps, step in enumerate(plant.steps(share), start=1):
        for event in step:
            runner.publish(topics.for_event(event), event.asset_id.encode(), encode(event), event.ts)
            if isinstance(event, MaintenanceLog):
                output.logs.append(event)
        runner.pump()
        if steps % report_every == 0:
            reporter.send(steps, output)
    runner.finish()
    reporter.send(steps, output, final={"dead_letters": processor.stats.dead_letters})


@dataclass(frozen=True)
class DemoOutcome:
    """Where the demo wrote its results, and its summary."""

    database: Path
    report: Path
    summary: dict[str, Any]
    dead_letters: dict[str, int]


def default_workers(assets: int) -> int:
    """One worker per core, never more than assets."""
    return max(1, min(os.cpu_count() or 1, assets))


SINK_BACKOFF = Backoff(max_delay_s=30.0, give_up_after_s=300.0)
"""While a sink is unavailable the demo waits (1 s doubling to 30 s, or the server's ``Retry-After``), then fails
after five minutes with the reason."""


def _drain(sender: WebhookSender, wait_s: float = 60.0) -> dict[str, int]:
    """Let the sender finish what is due (up to ``wait_s``), stop it, and count deliveries by state."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and sender.states().get("pending", 0):
        time.sleep(0.2)
    states = sender.states()
    sender.stop()
    return states


def run_demo(
    config: FusewatchConfig,
    simulator: SimulatorConfig,
    out_dir: Path,
    summary_json: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    influx: InfluxSink | None = None,
    webhooks: Sequence[Endpoint] = (),
    drain_s: float = 60.0,
) -> DemoOutcome:
    """Run the demo; returns paths and the summary (also written to ``summary_json`` when given).

    With ``influx``, every score, feature set and alert transition is also written there, batch by batch as
    the workers report (docs/influxdb.md). With ``webhooks``, every alert transition is delivered to them, signed,
    through a durable outbox in ``out_dir`` (docs/webhooks.md); the demo waits up to ``drain_s`` (a minute) at
    the end for what is still pending.
    """
    started = time.perf_counter()
    run_id = f"demo-seed{simulator.seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    database = out_dir / "fusewatch.sqlite"
    for stale in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        stale.unlink(missing_ok=True)
    plant = PlantSimulator(simulator)
    truth = [t.model_dump(mode="json") for t in plant.ground_truth]
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    count = workers or default_workers(simulator.assets)
    job = functools.partial(simulate_and_score, functools.partial(PlantSimulator, simulator), config, run_id, 60)
    dead_letters: Counter[str] = Counter()
    windows = 0
    points_before = influx.points_written if influx is not None else 0
    sender = WebhookSender(webhooks, out_dir / "webhooks.sqlite") if webhooks else None
    if sender is not None:
        sender.start()
    with SqliteSink(database) as sink:
        sink.add_ground_truth(plant.ground_truth)
        sinks: list[Sink] = [sink] if influx is None else [sink, influx]
        fanout = FanOut(sinks, sender, SINK_BACKOFF)
        done = dict.fromkeys(range(count), 0)
        with tqdm(total=plant.total_steps, unit="min", desc="plant time", disable=not progress) as bar:
            for report in run_partitioned(job, count):
                records: list[Record] = [scored.score for scored in report.scored]
                records += [*report.logs, *report.alerts, *report.letters]
                fanout.deliver(records)
                windows += len(report.scored)
                if report.final is not None:
                    dead_letters.update(report.final["dead_letters"])
                done[report.worker] = report.progress
                bar.update(min(done.values()) - bar.n)
                bar.set_postfix(windows=windows, refresh=False)
        sink.flush()
        rows = summarize_run(plant.ground_truth, sink.read_alerts(run_id=run_id))
        title = f"fusewatch demo: {simulator.assets} assets, {simulator.days:g} days, seed {simulator.seed}"
        report_path = write_report(sink, out_dir, run_id=run_id, title=title, summary_rows=rows)
    summary: dict[str, Any] = {"assets": rows, "windows": windows,
                               "wall_seconds": round(time.perf_counter() - started, 3)}
    if sender is not None:
        summary["webhooks"] = _drain(sender, drain_s)
    if influx is not None:
        summary["influx_points"] = influx.points_written - points_before
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return DemoOutcome(database, report_path, summary, dict(dead_letters))
