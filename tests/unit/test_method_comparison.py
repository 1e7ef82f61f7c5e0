"""Comparing fusion methods over a scored run: labels, lead times, false alarms and plots from known series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusewatch.config import FusewatchConfig
from fusewatch.core.events import GroundTruth
from fusewatch.core.timeutil import NS_PER_HOUR
from fusewatch.evaluation.methods import WindowRecord
from fusewatch.scenarios.scoring import add_verdict, compare_methods
from fusewatch.scenarios.summary import ScenarioSummary

MINUTE = 60 * 10**9
HOURS = 72


def _records() -> tuple[list[WindowRecord], list[GroundTruth]]:
    """Two assets over 72 h. ``sick`` degrades from 24 h to its failure at 48 h: its vibration and camera each
    rise to 3.5 decades of surprise (not enough to alert alone under the default policy: 0.45), together
    they are over five decades (Fisher, with the logs normal). ``well`` is normal throughout."""
    rng = np.random.default_rng(0)
    records = []
    onset, failure = 24 * NS_PER_HOUR, 48 * NS_PER_HOUR
    for asset in ("sick", "well"):
        for k in range(HOURS * 60):
            end = (k + 1) * MINUTE
            x = {m: float(rng.uniform(0.0, 0.99)) for m in ("vibration", "camera", "logs", "early")}
            if asset == "sick" and onset + 4 * NS_PER_HOUR <= end <= failure:
                x["vibration"] = x["camera"] = 1.0 - 10 ** -3.5
            logs = ((end, "failure"),) if asset == "sick" and end == failure else ()
            if asset == "sick" and failure < end < failure + 6 * NS_PER_HOUR:
                continue  # down
            records.append(WindowRecord(asset, end, k < 60, x, {"vibration": 1.0}, logs))
    truths = [
        GroundTruth(asset_id="sick", asset_kind="pump", fault_type="leak", onset_at=onset, failure_at=failure,
                    restart_at=failure + 6 * NS_PER_HOUR, first_modality="vibration"),
        GroundTruth(asset_id="well", asset_kind="pump", fault_type=None, onset_at=None, failure_at=None,
                    restart_at=None, first_modality=None),
    ]
    return records, truths


def test_fusion_finds_what_no_single_modality_alerts_on(tmp_path: Path) -> None:
    records, truths = _records()
    summary = ScenarioSummary("synthetic", 0)
    compare_methods(summary, records, truths, FusewatchConfig(), tmp_path)
    vibration, late = summary.row("vibration"), summary.row("fisher")
    assert vibration["faults_detected"] == 0 and vibration["lead_time_hours_median"] == 0.0
    assert late["faults_detected"] == 1 and late["lead_time_hours_median"] == pytest.approx(20.0, abs=0.2)
    assert late["false_alarms_per_asset_day"] == 0.0
    assert late["roc_auc"] > 0.85 and vibration["roc_auc"] > 0.85  # the first 4 h after onset look normal
    assert summary.row("logs")["roc_auc"] == pytest.approx(0.5, abs=0.05)
    assert summary.details["lead_times_hours"]["fisher"] == {"sick": late["lead_time_hours_median"]}
    assert summary.details["stacking"]["labels"]["positive"] > 0
    add_verdict(summary)
    assert summary.details["verdict"]["lead_time_hours_median"]["fusion_wins"]
    for plot in summary.plots:
        assert (tmp_path / plot).stat().st_size > 10_000
