"""``fusewatch demo``: a simulated plant scored end to end on this machine, with no services.

Simulator (child process) → in-process bus → aligner → pipeline → alert policy → SQLite + HTML report, then a
summary of detection against the simulator's ground truth.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from connectors.report import write_report
from connectors.simulator import PlantSimulator, SimulatorConfig
from connectors.sqlite_sink import SqliteSink
from fusewatch.config import FusewatchConfig
from fusewatch.events import Alert, DeadLetter
from fusewatch.topics import Topics
from models.vibration import BearingFrequencies
from streams.embedded import EmbeddedRunner, simulated_batches
from streams.evaluation import summarize_run
from streams.pipeline import ScoredWindow
from streams.processor import StreamProcessor


class SqliteOutput:
    """Sends the processor's results to a :class:`SqliteSink`, flushing every ``flush_every`` scores."""

    def __init__(self, sink: SqliteSink, flush_every: int = 5_000) -> None:
        self.sink = sink
        self.flush_every = flush_every
        self._since_flush = 0

    def score(self, scored: ScoredWindow) -> None:
        self.sink.add_score(scored.score, scored.features)
        self._since_flush += 1

    def alert(self, alert: Alert) -> None:
        self.sink.add_alert(alert)

    def dead_letter(self, letter: DeadLetter) -> None:
        self.sink.add_dead_letter(letter)

    def maybe_flush(self) -> None:
        """Flush when enough scores are buffered (called between batches)."""
        if self._since_flush >= self.flush_every:
            self.sink.flush()
            self._since_flush = 0


@dataclass(frozen=True)
class DemoOutcome:
    """Where the demo wrote its results, and its summary."""

    database: Path
    report: Path
    summary: dict[str, Any]
    dead_letters: dict[str, int]


def run_demo(
    config: FusewatchConfig,
    simulator: SimulatorConfig,
    out_dir: Path,
    summary_json: Path | None = None,
    progress: bool = True,
) -> DemoOutcome:
    """Run the demo; returns paths and the summary (also written to ``summary_json`` when given)."""
    started = time.perf_counter()
    run_id = f"demo-seed{simulator.seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    database = out_dir / "fusewatch.sqlite"
    for stale in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        stale.unlink(missing_ok=True)
    plant = PlantSimulator(simulator)
    sink = SqliteSink(database)
    sink.add_ground_truth(plant.ground_truth)
    output = SqliteOutput(sink)

    def bearings(asset_id: str) -> BearingFrequencies | None:
        k = plant.kinematics(asset_id)
        return BearingFrequencies(k.shaft_hz, k.bpfo_hz, k.bpfi_hz, k.bsf_hz, k.ftf_hz)

    processor = StreamProcessor(config, output, run_id=run_id, bearings=bearings)
    runner = EmbeddedRunner(processor, flush=output.maybe_flush)
    with tqdm(total=plant.total_steps, unit="step", desc="plant minutes", disable=not progress) as bar:

        def advance(steps: int) -> None:
            bar.update(steps - bar.n)
            bar.set_postfix(windows=processor.stats.scores, alerts=processor.stats.alerts, refresh=False)

        result = runner.run(simulated_batches(simulator, Topics()), on_progress=advance)
    sink.flush()
    rows = summarize_run(plant.ground_truth, sink.read_alerts(run_id=run_id))
    summary = {"assets": rows, "windows": result.windows, "wall_seconds": round(time.perf_counter() - started, 3)}
    report = write_report(sink, out_dir, run_id=run_id, title=f"fusewatch demo (seed {simulator.seed})", summary_rows=rows)
    sink.close()
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return DemoOutcome(database, report, summary, dict(processor.stats.dead_letters))
