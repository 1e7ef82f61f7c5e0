"""The ``semi-real`` scenario: a fleet whose modalities are drawn from real data, every fusion method compared.

See :mod:`connectors.simulator.semi_real` for how the streams are stitched and the degradation schedules.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from connectors.simulator.semi_real import SCHEDULES, SemiRealConfig, SemiRealPlant
from fusewatch.config import FusewatchConfig
from fusewatch.scenarios.scoring import compare_methods, score_plant
from fusewatch.scenarios.simulated import add_verdict
from fusewatch.scenarios.summary import ScenarioSummary


def run(
    seed: int = 0,
    out_dir: Path | None = None,
    progress: bool = True,
    config: FusewatchConfig | None = None,
    assets: int = 6,
    days: float = 8.0,
) -> ScenarioSummary:
    """Stream the semi-real fleet through the pipeline; one summary row per method."""
    config = config or FusewatchConfig()
    started = time.perf_counter()
    plant_config = SemiRealConfig(assets=assets, days=days, seed=seed)
    plant = SemiRealPlant(plant_config)
    records = score_plant(functools.partial(SemiRealPlant, plant_config), assets, plant.total_steps, config,
                          f"evaluate-semi-real-seed{seed}", progress)
    summary = ScenarioSummary("semi-real", seed)
    compare_methods(summary, records, plant.ground_truth, config, out_dir)
    summary.details.update(
        assets=assets, days=days, windows=len(records), wall_seconds=round(time.perf_counter() - started, 1),
        schedules={t.asset_id: (t.fault_type, t.first_modality) for t in plant.ground_truth},
        schedule_definitions={s.name: [(sign.modality, sign.delay_hours, sign.peak) for sign in s.signs]
                              for s in SCHEDULES},
    )
    add_verdict(summary)
    return summary
