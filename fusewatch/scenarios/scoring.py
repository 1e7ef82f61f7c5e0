"""Score a plant (simulated or semi-real) with the streaming pipeline and compare every fusion method.

The plant's assets are shared over worker processes as in ``fusewatch demo``; the parent keeps one compact
record per window and then replays them through every fusion method and measures each against the ground
truth (:mod:`fusewatch.evaluation.methods`).
"""

from __future__ import annotations

import functools
import pickle
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from fusewatch.config import FusewatchConfig
from fusewatch.core.events import GroundTruth
from fusewatch.demo import Plant, default_workers, simulate_and_score
from fusewatch.evaluation.methods import WindowRecord, first_alertable_hours, method_rows, record_of, replay_methods
from fusewatch.scenarios.plots import SUMMARY_PLOT, TIMELINE_PLOT, plot_summary, plot_timelines
from fusewatch.scenarios.summary import ScenarioSummary
from streams.fusion_stage import METHODS, MODALITIES
from streams.runners.embedded import run_partitioned


def score_plant(
    plant_factory: Callable[[], Plant],
    assets: int,
    total_steps: int,
    config: FusewatchConfig,
    run_id: str,
    progress: bool = True,
) -> list[WindowRecord]:
    """Run the plant through the pipeline in worker processes; one record per scored window."""
    count = default_workers(assets)
    job = functools.partial(simulate_and_score, plant_factory, config, run_id, 60)
    records: list[WindowRecord] = []
    done = dict.fromkeys(range(count), 0)
    with tqdm(total=total_steps, unit="min", desc="plant time", disable=not progress) as bar:
        for report in run_partitioned(job, count):
            records += [record_of(scored) for scored in report.scored]
            done[report.worker] = report.progress
            bar.update(min(done.values()) - bar.n)
    return records


def compare_methods(
    summary: ScenarioSummary,
    records: Sequence[WindowRecord],
    truths: Sequence[GroundTruth],
    config: FusewatchConfig,
    out_dir: Path | None = None,
) -> None:
    """Replay every fusion method over the records, add one summary row per method, and plot (to ``out_dir``)."""
    started = time.perf_counter()
    series, stacking = replay_methods(records, config.models, config.alerts)
    rows = method_rows(series, truths)
    summary.details["lead_times_hours"] = {row["method"]: row.pop("lead_times_hours") for row in rows}
    for row in rows:
        method = row.pop("method")
        summary.add_row(method, **row)
    summary.details["stacking"] = stacking
    summary.details["replay_seconds"] = round(time.perf_counter() - started, 1)
    if out_dir is not None:
        title = f"{summary.scenario}, seed {summary.seed}"
        plot_summary(summary.rows, title, out_dir / SUMMARY_PLOT)
        plot_timelines(series, truths, title, out_dir / TIMELINE_PLOT)
        summary.plots += [SUMMARY_PLOT, TIMELINE_PLOT]


class _RecordsUnpickler(pickle.Unpickler):
    """Reads records files written while the records' class lived in ``fusewatch.scenarios.methods``."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "fusewatch.scenarios.methods":
            module = "fusewatch.evaluation.methods"
        return super().find_class(module, name)


def load_records(path: Path) -> list[WindowRecord]:
    """Scored windows saved by :func:`save_records` (a local working file of this machine, never shared)."""
    with path.open("rb") as handle:
        records: list[WindowRecord] = _RecordsUnpickler(handle).load()
    return records


def save_records(records: Sequence[WindowRecord], path: Path) -> None:
    """Save scored windows for :func:`load_records` (written aside and renamed: never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    with temporary.open("wb") as handle:
        pickle.dump(list(records), handle, protocol=5)
    temporary.replace(path)


SINGLE = MODALITIES
FUSED = tuple(method for method in METHODS if method not in MODALITIES)


class FleetPlant(Plant, Protocol):
    """A plant a fleet scenario can score: the runner's interface plus its length and ground truth."""

    @property
    def total_steps(self) -> int: ...

    @property
    def ground_truth(self) -> list[GroundTruth]: ...


def evaluate_fleet(
    name: str,
    plant: FleetPlant,
    plant_factory: Callable[[], Plant],
    seed: int,
    out_dir: Path | None,
    progress: bool,
    config: FusewatchConfig | None,
    records_path: Path | None = None,
) -> ScenarioSummary:
    """Score a fleet through the streaming pipeline and compare every method; ``plant_factory`` rebuilds
    ``plant`` in each worker process.

    With ``records_path``, the scored windows are saved there, or loaded from there if the file exists: the
    fusion methods can then be compared again under other ``[models]`` fusion settings or alert settings in
    seconds, without scoring the plant again (the per-modality models are not re-run).
    """
    config = config or FusewatchConfig()
    started = time.perf_counter()
    if records_path is not None and records_path.exists():
        records = load_records(records_path)
    else:
        records = score_plant(plant_factory, len(plant.asset_ids), plant.total_steps, config,
                              f"evaluate-{name}-seed{seed}", progress)
        if records_path is not None:
            save_records(records, records_path)
    summary = ScenarioSummary(name, seed)
    compare_methods(summary, records, plant.ground_truth, config, out_dir)
    summary.details.update(windows=len(records), wall_seconds=round(time.perf_counter() - started, 1),
                           first_alertable_hours=first_alertable_hours(records))
    add_verdict(summary)
    return summary


def add_verdict(summary: ScenarioSummary) -> None:
    """Record whether the best fused method beats the best single modality (ROC AUC and median lead time)."""
    verdict = {}
    for metric in ("roc_auc", "lead_time_hours_median"):
        single, single_value = best(summary, SINGLE, metric)
        fused, fused_value = best(summary, FUSED, metric)
        verdict[metric] = {"best_single": single, "best_single_value": single_value, "best_fused": fused,
                           "best_fused_value": fused_value, "fusion_wins": fused_value > single_value}
    summary.details["verdict"] = verdict


def best(summary: ScenarioSummary, methods: Sequence[str], metric: str) -> tuple[str, Any]:
    """The method among ``methods`` with the highest ``metric`` (rows without it are skipped)."""
    candidates = [(row[metric], row["method"]) for row in summary.rows
                  if row["method"] in methods and row[metric] is not None]
    value, method = max(candidates)
    return method, value
