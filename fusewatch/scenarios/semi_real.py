"""The ``semi-real`` scenario: a fleet whose modalities are drawn from real data, every fusion method compared.

See :mod:`connectors.sources.simulator.semi_real` for how the streams are stitched and the degradation schedules.
"""

from __future__ import annotations

import functools
from pathlib import Path

from connectors.sources.simulator.semi_real import SCHEDULES, SemiRealConfig, SemiRealPlant
from fusewatch.config import FusewatchConfig
from fusewatch.scenarios.elpv import CONFIG
from fusewatch.scenarios.scoring import evaluate_fleet
from fusewatch.scenarios.summary import ScenarioSummary


def run(
    seed: int = 0,
    out_dir: Path | None = None,
    progress: bool = True,
    config: FusewatchConfig | None = None,
    records: Path | None = None,
    assets: int = 6,
    days: float = 8.0,
) -> ScenarioSummary:
    """Stream the semi-real fleet through the pipeline; one summary row per method.

    The cameras watch solar cells, so their autoencoders use the settings measured on elpv
    (:data:`fusewatch.scenarios.elpv.CONFIG`: depth, gain normalisation, darker-only error, error baseline).
    """
    base = config or FusewatchConfig()
    cells = CONFIG
    models = base.models.model_copy(update={
        "camera_input_size": cells.input_size, "camera_depth": cells.depth,
        "camera_normalization": cells.normalization, "camera_error": cells.error,
        "camera_error_baseline": cells.error_baseline,
    })
    config = base.model_copy(update={"models": models})
    plant_config = SemiRealConfig(assets=assets, days=days, seed=seed)
    plant = SemiRealPlant(plant_config)
    summary = evaluate_fleet("semi-real", plant, functools.partial(SemiRealPlant, plant_config), seed, out_dir,
                             progress, config, records)
    summary.details.update(
        assets=assets, days=days,
        schedules={t.asset_id: (t.fault_type, t.first_modality) for t in plant.ground_truth},
        schedule_definitions={s.name: [(sign.modality, sign.delay_hours, sign.peak) for sign in s.signs]
                              for s in SCHEDULES},
    )
    return summary
