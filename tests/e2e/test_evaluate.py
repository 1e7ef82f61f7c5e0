"""End to end: `fusewatch evaluate` on real data and on the simulated and semi-real fleets.

The plant scenarios check the acceptance of the fusion question: the best fused method beats the best single
modality in window ROC AUC and in median lead time (docs/models.md has the full tables).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusewatch.core.events import MODALITIES
from fusewatch.scenarios import run_scenario
from models.fusion import fusion_names

CORE = ["method", "roc_auc", "pr_auc", "lead_time_hours_median", "false_alarms_per_asset_day"]
# each modality alone, then every registered fusion method (but the learned one: these runs have no bundle)
PLANT_METHODS = [*MODALITIES, *(name for name in fusion_names() if name != "learned")]


@pytest.mark.realdata
def test_cli_writes_the_summary_json_and_plots(tmp_path: Path) -> None:
    summary_path = tmp_path / "mfpt.json"
    command = [sys.executable, "-m", "fusewatch.cli", "evaluate", "--scenario", "mfpt", "--seed", "1",
               "--summary-json", str(summary_path), "--out", str(tmp_path / "plots"), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[:5] == CORE
    summary = json.loads(summary_path.read_text())
    assert summary["scenario"] == "mfpt" and summary["seed"] == 1
    assert [row["method"] for row in summary["rows"]] == ["vibration"]
    assert list(summary["rows"][0])[:5] == CORE
    assert summary["rows"][0]["roc_auc"] >= 0.95
    assert all((tmp_path / "plots" / plot).stat().st_size > 10_000 for plot in summary["plots"])
    unknown = subprocess.run([sys.executable, "-m", "fusewatch.cli", "evaluate", "--scenario", "cwru"],
                             capture_output=True, text=True, timeout=120, check=False)
    assert unknown.returncode == 2 and "invalid choice: 'cwru'" in unknown.stderr


def _check_plant_summary(scenario: str, tmp_path: Path) -> dict[str, dict[str, float]]:
    summary = run_scenario(scenario, seed=0, out_dir=tmp_path, progress=False)
    assert [row["method"] for row in summary.rows] == PLANT_METHODS
    verdict = summary.details["verdict"]
    for metric in ("roc_auc", "lead_time_hours_median"):
        assert verdict[metric]["fusion_wins"], (metric, verdict[metric], summary.rows)
    return {row["method"]: row for row in summary.rows}


@pytest.mark.slow
def test_simulated_fusion_beats_every_single_modality(tmp_path: Path) -> None:
    """The default demo fleet (6 assets, 14 days, seed 0): Fisher late fusion, the default, finds every fault."""
    rows = _check_plant_summary("simulated", tmp_path)
    late = rows["fisher"]
    assert late["faults_detected"] == late["faults"] == 4
    assert late["false_alarms"] <= 1
    assert late["roc_auc"] > max(rows[m]["roc_auc"] for m in ("vibration", "camera", "logs")) + 0.1


@pytest.mark.slow
@pytest.mark.realdata
def test_semi_real_fusion_beats_every_single_modality(tmp_path: Path) -> None:
    rows = _check_plant_summary("semi-real", tmp_path)
    assert rows["fisher"]["false_alarms"] <= 1
