"""The ``new-assets`` scenario: a simulated fleet of new machines, every fault starting in its first day.

Each faulty machine's fault starts between 2 and 24 hours after its first message, the case a fleet bundle is
for: a plant that installs fusewatch, adds a machine or replaces a sensor. Without a bundle every asset is in
its warm-up (``[models] warmup_windows``, two days by default) while the fault grows, so the figure this
scenario reports for the default models is the baseline a bundle has to beat.
"""

from __future__ import annotations

import functools
from pathlib import Path

from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.config import FusewatchConfig
from fusewatch.scenarios.scoring import evaluate_fleet
from fusewatch.scenarios.summary import ScenarioSummary

EARLIEST_ONSET_DAYS = 2 / 24
LATEST_ONSET_DAYS = 1.0


def new_fleet(assets: int, days: float, seed: int) -> SimulatorConfig:
    """The simulator's settings of a fleet whose faults all start in the machines' first day.

    >>> config = new_fleet(8, 5.0, seed=3)
    >>> plant = PlantSimulator(config)
    >>> plans = [plant.fault_plan(asset_id) for asset_id in plant.asset_ids]
    >>> onsets = [(plan.onset_ns - config.start_ns) / 3.6e12 for plan in plans if plan is not None]
    >>> len(onsets) >= 4 and all(2 <= hours <= 24 for hours in onsets)
    True
    """
    return SimulatorConfig(assets=assets, days=days, seed=seed, fault_free_days=EARLIEST_ONSET_DAYS,
                           latest_onset_days=LATEST_ONSET_DAYS)


def run(
    seed: int = 0,
    out_dir: Path | None = None,
    progress: bool = True,
    config: FusewatchConfig | None = None,
    records: Path | None = None,
    assets: int = 8,
    days: float = 5.0,
) -> ScenarioSummary:
    """Simulate and score the new fleet; one summary row per method."""
    simulator = new_fleet(assets, days, seed)
    plant = PlantSimulator(simulator)
    summary = evaluate_fleet("new-assets", plant, functools.partial(PlantSimulator, simulator), seed, out_dir,
                             progress, config, records)
    summary.details.update(assets=assets, days=days, onset_hours=[EARLIEST_ONSET_DAYS * 24, LATEST_ONSET_DAYS * 24])
    return summary
