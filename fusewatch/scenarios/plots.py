"""Plots of a method comparison: every method's ROC AUC and lead time, and the score timelines of faulty assets.

Drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, no GUI), as the demo report does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fusewatch.core.events import GroundTruth
from fusewatch.core.timeutil import NS_PER_HOUR
from fusewatch.evaluation.methods import MethodSeries
from streams.fusion_stage import MODALITIES

SUMMARY_PLOT = "methods_summary.png"
TIMELINE_PLOT = "methods_timeline.png"
SWEEP_PLOT = "sweep.png"
_TIMELINE_METHODS = ("vibration", "camera", "logs", "early", "fisher", "hybrid")
_SINGLE = frozenset(MODALITIES)


def plot_summary(rows: Sequence[dict[str, Any]], title: str, path: Path) -> None:
    """Bars of ROC AUC and median lead time per method; single modalities grey, fused methods blue."""
    figure = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(figure)
    methods = [row["method"] for row in rows]
    colours = ["#9e9e9e" if m in _SINGLE else "#1f77b4" for m in methods]
    for column, (metric, label) in enumerate((("roc_auc", "window ROC AUC"),
                                              ("lead_time_hours_median", "median lead time (h, missed = 0)"))):
        axes = figure.add_subplot(1, 2, column + 1)
        values = [row[metric] if row[metric] is not None else 0.0 for row in rows]
        axes.barh(methods, values, color=colours)
        for y, value in enumerate(values):
            axes.text(value, y, f" {value:.3g}", va="center", fontsize=8)
        axes.invert_yaxis()
        axes.set_xlabel(label)
        if metric == "roc_auc":
            axes.set_xlim(0.0, 1.08)
            axes.axvline(0.5, color="k", lw=0.6, ls=":")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot_timelines(series: dict[str, MethodSeries], truths: Sequence[GroundTruth], title: str, path: Path) -> None:
    """Per faulty asset, the scores of the single modalities and of early, late and hybrid fusion over time."""
    faulty = [t for t in truths if t.onset_at is not None and t.failure_at is not None]
    if not faulty:
        return
    figure = Figure(figsize=(11, 2.3 * len(faulty) + 0.6))
    FigureCanvasAgg(figure)
    for row, truth in enumerate(faulty):
        axes = figure.add_subplot(len(faulty), 1, row + 1)
        for method in _TIMELINE_METHODS:
            points = np.array(series[method].scores.get(truth.asset_id, []), dtype=float)
            if points.size == 0:
                continue
            hours = (points[:, 0] - float(truth.onset_at or 0)) / NS_PER_HOUR
            step = max(1, len(hours) // 1500)  # one point in ``step`` is plenty at this width
            axes.plot(hours[::step], points[::step, 1], lw=0.6 if method in _SINGLE else 1.2, label=method,
                      ls=":" if method in _SINGLE else "-")
        failure_h = ((truth.failure_at or 0) - (truth.onset_at or 0)) / NS_PER_HOUR
        axes.axvspan(0.0, failure_h, color="#ffcc80", alpha=0.35, lw=0)
        axes.set_ylim(0.0, 1.02)
        axes.set_ylabel("score")
        axes.set_title(f"{truth.asset_id}: {truth.fault_type}, first in {truth.first_modality}"
                       " (shaded: onset to failure)", fontsize=9)
        if row == 0:
            axes.legend(ncol=6, fontsize=7, loc="upper left")
    figure.axes[-1].set_xlabel("hours from fault onset")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def plot_sweep(groups: Sequence[dict[str, Any]], title: str, path: Path) -> None:
    """Per fault type and first modality of a sweep, each fault's lead time (found: a dot; missed: a red cross at
    0 h) and the share found."""
    figure = Figure(figsize=(9, 0.6 * len(groups) + 1.4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    rng = np.random.default_rng(0)  # a little vertical jitter, so equal leads stay visible
    for row, group in enumerate(groups):
        leads = np.array(group["lead_times_h"], dtype=float)
        jitter = rng.uniform(-0.15, 0.15, leads.size)
        axes.scatter(leads, row + jitter, s=14, color="#1f77b4", alpha=0.8)
        if group["faults"] > group["found"]:
            missed = group["faults"] - group["found"]
            axes.scatter(np.zeros(missed), row + rng.uniform(-0.15, 0.15, missed), marker="x", color="#d62728", s=30)
        axes.text(1.01, row, f"{group['found']}/{group['faults']}", va="center", transform=axes.get_yaxis_transform(),
                  fontsize=8)
    axes.set_yticks(range(len(groups)), [f"{g['fault_type']} ({g['first_modality']} first)" for g in groups])
    axes.invert_yaxis()
    axes.set_xlabel("lead time before failure (h); missed faults: red crosses at 0")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
