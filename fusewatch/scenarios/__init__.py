"""Evaluation scenarios behind ``fusewatch evaluate``: the models run on simulated and real data, scored.

Each scenario module has ``run(seed, out_dir, progress, ...) -> ScenarioSummary``; the plant scenarios
(``simulated``, ``semi-real``) also take the configuration, since they run the whole streaming pipeline.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fusewatch.config import FusewatchConfig
from fusewatch.core.errors import ConfigError
from fusewatch.scenarios.summary import ScenarioSummary

SCENARIOS = {
    "simulated": "the plant simulator's fleet, every fusion method compared against ground truth",
    "semi-real": "a fleet whose streams draw each modality from the real data sets, faults mixed in on schedules",
    "new-assets": "a simulated fleet of new machines, every fault starting 2-24 h after the machine's first message",
    "mfpt": "MFPT bearing records: healthy vs outer/inner race, envelope peaks at BPFO/BPFI",
    "elpv": "elpv solar-cell images: autoencoder trained on defect-free cells, AUROC against defect labels",
    "nestor": "NIST excavator work orders: prequential accuracy of the online text model vs expert labels",
}
PLANT_SCENARIOS = frozenset({"simulated", "semi-real", "new-assets"})


def run_scenario(
    name: str, seed: int = 0, out_dir: Path | None = None, progress: bool = True,
    config: FusewatchConfig | None = None, records: Path | None = None,
) -> ScenarioSummary:
    """Run the scenario ``name`` (a key of :data:`SCENARIOS`); ``records`` applies to the plant scenarios."""
    if name not in SCENARIOS:
        raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    module = importlib.import_module(f"fusewatch.scenarios.{name.replace('-', '_')}")
    if name in PLANT_SCENARIOS:
        summary: ScenarioSummary = module.run(seed=seed, out_dir=out_dir, progress=progress, config=config,
                                              records=records)
    else:
        summary = module.run(seed=seed, out_dir=out_dir, progress=progress)
    return summary
