"""The ``new-assets`` scenario: a simulated fleet of new machines, every fault starting in its first day.

Each faulty machine's fault starts between 2 and 24 hours after its first message, the case a fleet bundle is
for: a plant that installs fusewatch, adds a machine or replaces a sensor. Without a bundle every asset is in
its warm-up (``[models] warmup_windows``, two days by default) while the fault grows, so the figure this
scenario reports for the default models is the baseline a bundle has to beat.
"""

from __future__ import annotations

import functools

from connectors.sources.simulator import SimulatorConfig
from fusewatch.scenarios import simulated

EARLIEST_ONSET_DAYS = 2 / 24
LATEST_ONSET_DAYS = 1.0


def new_fleet(assets: int, days: float, seed: int) -> SimulatorConfig:
    """The simulator's settings of a fleet whose faults all start in the machines' first day.

    >>> from connectors.sources.simulator import PlantSimulator
    >>> config = new_fleet(8, 5.0, seed=3)
    >>> plant = PlantSimulator(config)
    >>> plans = [plant.fault_plan(asset_id) for asset_id in plant.asset_ids]
    >>> onsets = [(plan.onset_ns - config.start_ns) / 3.6e12 for plan in plans if plan is not None]
    >>> len(onsets) >= 4 and all(2 <= hours <= 24 for hours in onsets)
    True
    """
    return SimulatorConfig(assets=assets, days=days, seed=seed, fault_free_days=EARLIEST_ONSET_DAYS,
                           latest_onset_days=LATEST_ONSET_DAYS)


#: ``fusewatch evaluate --scenario new-assets``: the simulated scenario's scoring, on a new fleet of 8 assets x 5 days
run = functools.partial(simulated.run, name="new-assets", assets=8, days=5.0, fleet=new_fleet)
