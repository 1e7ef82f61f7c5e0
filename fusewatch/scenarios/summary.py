"""The summary every evaluation scenario produces: one row per method, written as JSON.

>>> summary = ScenarioSummary("mfpt", seed=0)
>>> summary.add_row("vibration", roc_auc=0.991234, pr_auc=None, windows=120)
>>> summary.as_dict()["rows"][0]["roc_auc"], summary.as_dict()["rows"][0]["lead_time_hours_median"]
(0.9912, None)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CORE = ("roc_auc", "pr_auc", "lead_time_hours_median", "false_alarms_per_asset_day")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


@dataclass
class ScenarioSummary:
    """Rows per method plus free-form ``details`` (e.g. the envelope peaks found), and plot file names."""

    scenario: str
    seed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)

    def add_row(self, method: str, **metrics: Any) -> None:
        """Add one method's row; the four core metrics are always present (``None`` when they do not apply)."""
        row: dict[str, Any] = {"method": method}
        for key in _CORE:
            row[key] = _rounded(metrics.pop(key, None))
        row.update({key: _rounded(value) for key, value in metrics.items()})
        self.rows.append(row)

    def row(self, method: str) -> dict[str, Any]:
        """The row of ``method`` (KeyError if absent)."""
        for row in self.rows:
            if row["method"] == method:
                return row
        raise KeyError(method)

    def as_dict(self) -> dict[str, Any]:
        """The JSON document: ``{"scenario", "seed", "rows", "details", "plots"}``."""
        return {"scenario": self.scenario, "seed": self.seed, "rows": self.rows, "details": self.details,
                "plots": self.plots}

    def write(self, path: Path) -> None:
        """Write the JSON document to ``path`` (parents created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
