"""fusewatch: streaming predictive maintenance that fuses vibration, camera frames and maintenance logs."""

from __future__ import annotations

from fusewatch.core import __version__

__all__ = ["__version__"]
