"""The plant simulator: pumps and motors emitting vibration, camera frames and maintenance logs with known faults.

See ``docs/simulator.md`` for the physics, the fault schedule and the cost per asset-minute.
"""

from __future__ import annotations

from connectors.sources.simulator.config import SimulatorConfig
from connectors.sources.simulator.plant import FaultPlan, PlantSimulator

__all__ = ["FaultPlan", "PlantSimulator", "SimulatorConfig"]
