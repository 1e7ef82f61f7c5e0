"""fusewatch: streaming predictive maintenance that fuses vibration, camera frames and maintenance logs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
