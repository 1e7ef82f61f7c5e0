"""The ``simulated`` scenario: the plant simulator's fleet, scored, every fusion method compared.

The simulator gives aligned ground truth for all three modalities of each machine (fault onset, failure,
restart), which no public data set has. Defaults match ``fusewatch demo``: 6 assets over 14 days.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.config import FusewatchConfig
from fusewatch.scenarios.scoring import evaluate_fleet
from fusewatch.scenarios.summary import ScenarioSummary


def run(
    seed: int = 0,
    out_dir: Path | None = None,
    progress: bool = True,
    config: FusewatchConfig | None = None,
    records: Path | None = None,
    assets: int = 6,
    days: float = 14.0,
    *,
    name: str = "simulated",
    fleet: Callable[[int, float, int], SimulatorConfig] | None = None,
) -> ScenarioSummary:
    """Simulate and score the fleet ``fleet(assets, days, seed)`` describes; one summary row per method."""
    simulator = fleet(assets, days, seed) if fleet is not None else SimulatorConfig(assets=assets, days=days, seed=seed)
    plant = PlantSimulator(simulator)
    summary = evaluate_fleet(name, plant, functools.partial(PlantSimulator, simulator), seed, out_dir,
                             progress, config, records)
    summary.details.update(assets=assets, days=days)
    return summary
