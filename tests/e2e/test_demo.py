"""End to end: the real `fusewatch demo` command, the worker partitioning, and detection over several seeds."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from connectors.sinks.sqlite import SqliteSink
from connectors.sources.simulator import SimulatorConfig
from fusewatch.config import FusewatchConfig
from fusewatch.demo import run_demo

SUMMARY_KEYS = ["asset_id", "fault_type", "onset_at", "failure_at", "first_alert_at", "lead_time_hours", "false_alarms"]


def test_cli_demo_writes_report_summary_and_database(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "fusewatch.cli", "demo", "--assets", "2", "--days", "0.25", "--out", str(out),
               "--summary-json", str(out / "summary.json"), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert f"report:   {out / 'report.html'}" in done.stdout
    assert "pump-01" in done.stdout and "windows scored: 720" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["assets", "windows", "wall_seconds"]
    assert [list(row) for row in summary["assets"]] == [SUMMARY_KEYS, SUMMARY_KEYS]
    assert summary["windows"] == 720 and summary["wall_seconds"] > 0
    truth = json.loads((out / "ground_truth.json").read_text())
    assert [t["asset_id"] for t in truth] == ["pump-01", "motor-02"]
    assert set(truth[0]) == {"asset_id", "asset_kind", "fault_type", "onset_at", "failure_at", "restart_at",
                             "first_modality"}
    html = (out / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') >= 3
    with sqlite3.connect(out / "fusewatch.sqlite") as db:
        assert db.execute("select count(*) from scores").fetchone()[0] == 720
        assert db.execute("select count(*) from ground_truth").fetchone()[0] == 2


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[alerts]\nopen_k = 0\n")
    done = subprocess.run([sys.executable, "-m", "fusewatch.cli", "demo", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "alerts.open_k: Input should be greater than or equal to 1" in done.stderr
    assert "Traceback" not in done.stderr
    usage = subprocess.run([sys.executable, "-m", "fusewatch.cli", "demo", "--assets", "0"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert usage.returncode == 2 and "--assets: must be at least 1" in usage.stderr


def test_scores_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    simulator = SimulatorConfig(assets=3, days=0.2, seed=4)
    series = {}
    for workers in (1, 3):
        outcome = run_demo(FusewatchConfig(), simulator, tmp_path / f"w{workers}", workers=workers, progress=False)
        with SqliteSink(outcome.database) as sink:
            series[workers] = {a: sink.read_scores(a) for a in sink.asset_ids()}
    assert sorted(series[1]) == sorted(series[3]) == ["motor-02", "pump-01", "pump-03"]
    for asset, one in series[1].items():
        three = series[3][asset]
        np.testing.assert_array_equal(one.window_end_ns, three.window_end_ns)
        np.testing.assert_allclose(one.fused, three.fused, rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1])
def test_faults_are_detected_before_failure_with_few_false_alarms(tmp_path: Path, seed: int) -> None:
    """The default demo (6 assets, 14 days): every fault found before its failure, at most one false alarm.

    Seeds 0 to 5 all pass (docs/models.md); seed 1 (about 160 s) is re-run here to catch regressions, seed 0
    by ``tests/e2e/test_evaluate.py`` (the same pipeline and alert policy, every method compared). Shorter runs
    whose faults start as the warm-up ends are harder (see "Known limits" in docs/models.md).
    """
    outcome = run_demo(FusewatchConfig(), SimulatorConfig(assets=6, days=14, seed=seed), tmp_path, progress=False)
    rows = outcome.summary["assets"]
    faulty = [row for row in rows if row["fault_type"] is not None]
    assert faulty, "the scenario must contain faults"
    for row in faulty:
        assert row["lead_time_hours"] is not None and row["lead_time_hours"] > 0, row
    for row in rows:
        assert row["false_alarms"] <= 1, row


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


def test_sigterm_stops_the_workers(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "fusewatch.cli", "demo", "--assets", "2", "--days", "2", "--out",
               str(tmp_path), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(workers) < 2:  # the resource tracker and two workers
        time.sleep(0.5)
        workers = [pid for pid in _children(process.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(workers) == 2, "the workers did not start"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.5)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "worker processes outlived the command"
