"""A backtest's report directory: what it holds, how it is written so that only a finished run looks complete.

Layout (docs/backtest.md)::

    summary.json          the summary (the layout of ``fusewatch evaluate``'s summary)
    windows.npz           one entry per scored window: asset_id, window_end (ns), warmup, leading ("" for none),
                          and the fused score of every method (float32; ``configured`` is the run's own,
                          the others NaN during warm-up)
    alerts.json           the run's alert transitions, as on the alerts topic
    methods_summary.png   ROC AUC and median lead time per method
    report.html           the HTML report
    run.json              run id, configuration (TOML), source, time range, creation time — written last

Every file is written to a temporary name and renamed; ``run.json`` is removed first and written last, so a
directory whose run failed or was interrupted never has one and is refused by :func:`load_run`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from fusewatch.backtest.run import CONFIGURED, BacktestRun, Evaluation
from fusewatch.config import to_toml
from fusewatch.core.errors import IncompleteRunError
from fusewatch.core.events import Alert

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
WINDOWS_FILE = "windows.npz"
ALERTS_FILE = "alerts.json"
REPORT_FILE = "report.html"
REQUIRED_FILES = (SUMMARY_FILE, WINDOWS_FILE, ALERTS_FILE, REPORT_FILE, RUN_FILE)
FORMAT = 1
_ALERTS = TypeAdapter(list[Alert])


@dataclass
class StoredRun:
    """A backtest run as its report directory holds it."""

    path: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    windows: dict[str, np.ndarray]
    alerts: list[Alert]

    @property
    def run_id(self) -> str:
        return str(self.meta["run_id"])

    def methods(self) -> list[str]:
        return [row["method"] for row in self.summary["rows"]]

    def trace(self, asset_id: str, method: str = CONFIGURED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Window ends (ns), scores and warm-up flags of one asset under one method."""
        mask = self.windows["asset_id"] == asset_id
        return self.windows["window_end"][mask], self.windows[method][mask], self.windows["warmup"][mask]

    def assets(self) -> list[str]:
        return sorted({str(a) for a in self.windows["asset_id"].tolist()} |
                      {e["asset_id"] for e in self.summary["details"]["events"]})


def window_arrays(run: BacktestRun, evaluation: Evaluation) -> dict[str, np.ndarray]:
    """The windows file's arrays, ordered by asset then window end."""
    points = sorted(run.windows, key=lambda p: (p.asset_id, p.window_end))
    arrays: dict[str, np.ndarray] = {
        "asset_id": np.array([p.asset_id for p in points], dtype=str),
        "window_end": np.array([p.window_end for p in points], dtype=np.int64),
        "warmup": np.array([p.warmup for p in points], dtype=bool),
        "leading": np.array([p.leading or "" for p in points], dtype=str),
        CONFIGURED: np.array([p.fused for p in points], dtype=np.float32),
    }
    for method, by_asset in evaluation.scores.items():
        if method == CONFIGURED:
            continue
        values = [value for asset in sorted(by_asset) for _, value in by_asset[asset]]
        if len(values) != len(points):
            raise IncompleteRunError(f"{method}: {len(values)} replayed windows for {len(points)} scored")
        arrays[method] = np.array(values, dtype=np.float32)
    return arrays


def write_run(run: BacktestRun, evaluation: Evaluation, directory: Path,
              report: Callable[[StoredRun], str], summary_plot: Callable[[dict[str, Any], Path], None]) -> StoredRun:
    """Write the report directory (``report`` renders the HTML, ``summary_plot`` draws the PNG); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RUN_FILE).unlink(missing_ok=True)  # incomplete from here until the end
    summary = evaluation.summary
    summary["plots"] = ["methods_summary.png"]
    meta = {
        "format": FORMAT,
        "run_id": run.run_id,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": run.source,
        "time_range": summary["details"]["time_range"],
        "config_digest": summary["details"]["config_digest"],
        "config_toml": to_toml(run.config),
        "files": list(REQUIRED_FILES),
    }
    stored = StoredRun(directory, meta, summary, window_arrays(run, evaluation), run.alerts)
    _atomic(directory / SUMMARY_FILE, (json.dumps(summary, indent=2) + "\n").encode())
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **stored.windows)  # type: ignore[arg-type]
    _atomic(directory / WINDOWS_FILE, buffer.getvalue())
    _atomic(directory / ALERTS_FILE, _ALERTS.dump_json(run.alerts, indent=1) + b"\n")
    partial_plot = directory / ".methods_summary.png.partial"
    summary_plot(summary, partial_plot)
    partial_plot.replace(directory / "methods_summary.png")
    _atomic(directory / REPORT_FILE, report(stored).encode())
    _atomic(directory / RUN_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return stored


def _atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def load_run(directory: str | Path) -> StoredRun:
    """Read a complete report directory; :class:`IncompleteRunError` names the first missing file."""
    path = Path(directory)
    if not path.is_dir():
        raise IncompleteRunError(f"{path}: no such report directory")
    if not (path / RUN_FILE).is_file():
        raise IncompleteRunError(f"{path}: incomplete backtest run: {RUN_FILE} is missing (the run did not finish,"
                                 " or this is not a backtest report directory)")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise IncompleteRunError(f"{path}: incomplete backtest run: {name} is missing")
    try:
        meta = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
        summary = json.loads((path / SUMMARY_FILE).read_text(encoding="utf-8"))
        with np.load(path / WINDOWS_FILE, allow_pickle=False) as data:
            windows = {name: data[name] for name in data.files}
        alerts = _ALERTS.validate_json((path / ALERTS_FILE).read_bytes())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise IncompleteRunError(f"{path}: unreadable backtest run ({exc})") from None
    return StoredRun(path, meta, summary, windows, alerts)
