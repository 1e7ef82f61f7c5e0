"""The HTML reports of backtests: one run, or two runs compared; and the side-by-side table of a comparison.

One self-contained HTML file each, the plots PNGs inlined as base64, drawn with matplotlib's object-oriented
API on the Agg canvas (the helpers of :mod:`connectors.report`). Per asset: the fused-score trace of the run
(and of the second run when comparing), its alert transitions as markers, and the labelled events (fault start
to failure shaded, the failure a vertical line; a start only assumed — the label horizon before a failure
entry — shaded lighter).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from connectors.report import (
    _CSS,
    ALERT_STYLES,
    _format_time_axis,
    _gap_breaks,
    _img,
    _table,
    peak_indices,
    to_plot_days,
)
from fusewatch.backtest.run import CONFIGURED
from fusewatch.backtest.store import StoredRun
from fusewatch.core.timeutil import parse_time
from streams.fusion_stage import MODALITIES

COMPARED = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("lead_time_hours_median", "median lead (h)"),
    ("false_alarms_per_asset_day", "false alarms/asset-day"),
    ("faults_detected", "detected"),
    ("alerts", "alerts opened"),
)
RUN_COLOURS = ("#333333", "#1f77b4")


def _rows_with_alerts(run: StoredRun) -> list[dict[str, Any]]:
    opened = run.summary["details"].get("alerts_opened", {})
    return [{**row, "alerts": opened.get(row["method"])} for row in run.summary["rows"]]


def _events(run: StoredRun, asset_id: str) -> list[dict[str, Any]]:
    return [e for e in run.summary["details"]["events"] if e["asset_id"] == asset_id]


def methods_figure(runs: Sequence[StoredRun]) -> Figure:
    """Bars per method of ROC AUC, median lead time and alerts opened; one bar per run."""
    figure = Figure(figsize=(12, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    methods = list(dict.fromkeys(m for run in runs for m in run.methods()))
    height = 0.8 / len(runs)
    for column, (metric, label) in enumerate((("roc_auc", "window ROC AUC"),
                                              ("lead_time_hours_median", "median lead time (h, missed = 0)"),
                                              ("alerts", "alerts opened"))):
        axes = figure.add_subplot(1, 3, column + 1)
        for index, run in enumerate(runs):
            rows = {row["method"]: row for row in _rows_with_alerts(run)}
            values = [float(rows[m][metric] or 0.0) if m in rows else 0.0 for m in methods]
            offsets = np.arange(len(methods)) + (index - (len(runs) - 1) / 2) * height
            colour = [("#9e9e9e" if m in MODALITIES else "#1f77b4") for m in methods] if len(runs) == 1 else \
                RUN_COLOURS[index]
            axes.barh(offsets, values, height=height, color=colour, label=run.run_id)
        axes.set_yticks(range(len(methods)), methods if column == 0 else [""] * len(methods))
        axes.invert_yaxis()
        axes.set_xlabel(label)
        if metric == "roc_auc":
            axes.set_xlim(0.0, 1.05)
            axes.axvline(0.5, color="k", lw=0.6, ls=":")
        if len(runs) > 1 and column == 2:
            axes.legend(fontsize=8, loc="lower right")
    return figure


def trace_figure(asset_id: str, runs: Sequence[StoredRun]) -> Figure:
    """The fused-score trace(s) of one asset with alert transitions and labelled events."""
    figure = Figure(figsize=(12, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    spans = []
    for index, run in enumerate(runs):
        ends, values, warmup = run.trace(asset_id)
        if ends.size:
            spans.append((int(ends[0]), int(ends[-1])))
            picked = peak_indices(values.astype(float))
            breaks = _gap_breaks(ends, picked)  # no line across a stop (e.g. between a failure and the restart)
            name = f"{run.run_id} fused" if len(runs) > 1 else "fused score"
            axes.plot(np.insert(to_plot_days(ends[picked]), breaks, np.nan),
                      np.insert(values[picked].astype(float), breaks, np.nan), color=RUN_COLOURS[index], lw=0.8,
                      label=name)
            if index == 0 and warmup.any():
                axes.axvspan(float(to_plot_days(int(ends[warmup][0]))), float(to_plot_days(int(ends[warmup][-1]))),
                             color="#bbbbbb", alpha=0.3, lw=0, label="warm-up")
        for transition, (marker, colour, size) in ALERT_STYLES.items():
            chosen = [a for a in run.alerts if a.asset_id == asset_id and a.transition == transition]
            if chosen:
                prefix = f"{run.run_id}: " if len(runs) > 1 else ""
                hollow = index > 0
                axes.scatter(to_plot_days(np.array([a.ts for a in chosen])), [a.fused for a in chosen],
                             marker=marker, s=size, zorder=4, label=f"{prefix}alert {transition}",
                             facecolors="none" if hollow else colour, edgecolors=colour if hollow else "white",
                             linewidths=1.2 if hollow else 0.5)
    first, last = (min(s for s, _ in spans), max(e for _, e in spans)) if spans else (None, None)
    for number, event in enumerate(_events(runs[0], asset_id)):
        start = parse_time(event["fault_start"])
        failure = parse_time(event["failure"]) if event["failure"] else max(last or start, start)
        if first is not None:
            start = max(start, first)  # the horizon may reach back before the history: shade what was scored
        label = "labelled fault" if event["fault_start_known"] else "label horizon before failure"
        axes.axvspan(float(to_plot_days(start)), float(to_plot_days(failure)), color="orange",
                     alpha=0.3 if event["fault_start_known"] else 0.15, lw=0, label=label if number == 0 else None)
        if event["failure"]:
            axes.axvline(float(to_plot_days(failure)), color="black", lw=1.4, label="failure" if number == 0 else None)
    if first is not None and last is not None:
        margin = max((last - first) // 50, 1)
        axes.set_xlim(float(to_plot_days(first - margin)), float(to_plot_days(last + margin)))
    axes.set_title(asset_id, fontsize=11, loc="left")
    axes.set_ylabel("fused anomaly score")
    axes.set_ylim(0.0, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    _format_time_axis(axes)
    return figure


def _head(title: str) -> list[str]:
    return [f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>',
            f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>"]


def _meta(run: StoredRun) -> str:
    details = run.summary["details"]
    span = details["time_range"]
    letters = details["dead_letters"]
    reasons = ", ".join(f"{k} {v}" for k, v in letters["by_reason"].items())
    text = (f"Run <code>{html.escape(run.run_id)}</code> · source {html.escape(str(details['source']))} · "
            f"messages {span['first_message']} – {span['last_message']} · labels: {html.escape(details['labels'])} ·"
            f" config {details['config_digest']} ({html.escape(details['configured_fusion'])} fusion) · "
            f"{details['messages']:,} messages · {details['windows']:,} windows · {letters['count']} dead letters"
            + (f" ({html.escape(reasons)})" if reasons else "") + f" · created {run.meta.get('created', '?')}")
    return f'<p class="meta">{text}</p>'


def run_report_html(run: StoredRun) -> str:
    """The report of one run: overall, per-asset, per-event and ablation tables, and the traces."""
    details = run.summary["details"]
    rows = _rows_with_alerts(run)
    parts = [*_head(f"fusewatch backtest {run.run_id}"), _meta(run)]
    parts += ["<h2>Overall</h2>", _table([r for r in rows if r["method"] == CONFIGURED]),
              "<h2>Per asset</h2>", _table(details["assets"]) if details["assets"] else "<p>No windows.</p>",
              "<h2>Labelled events</h2>", _table(details["events"]) if details["events"] else "<p>No events.</p>",
              "<h2>Modality ablation</h2>",
              "<p>Every single modality and fusion method replayed over the run's windows, each with its own alert"
              " policy (the configured thresholds); <code>configured</code> is the run itself.</p>",
              _table(rows), _img(methods_figure([run]), "methods")]
    for asset_id in run.assets():
        parts += [f'<h2 id="{html.escape("asset-" + asset_id)}">{html.escape(asset_id)}</h2>',
                  _img(trace_figure(asset_id, [run]), f"trace of {asset_id}")]
    parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(run.meta.get('config_toml', ''))}</pre>",
              "</body>\n</html>\n"]
    return "\n".join(parts)


def compare_rows(a: StoredRun, b: StoredRun) -> list[dict[str, Any]]:
    """Per method (A's order, then B's others): each compared metric for A, B and B − A."""
    rows_a = {row["method"]: row for row in _rows_with_alerts(a)}
    rows_b = {row["method"]: row for row in _rows_with_alerts(b)}
    rows = []
    for method in dict.fromkeys([*rows_a, *rows_b]):
        row: dict[str, Any] = {"method": method}
        for metric, _ in COMPARED:
            first, second = rows_a.get(method, {}).get(metric), rows_b.get(method, {}).get(metric)
            delta = None if first is None or second is None else second - first
            if isinstance(delta, float):
                delta = round(delta, 4)
            row[f"{metric} A"], row[f"{metric} B"], row[f"{metric} B-A"] = first, second, delta
        rows.append(row)
    return rows


def _text(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{value:+d}" if signed and isinstance(value, int) else str(value)


def format_compare(a: StoredRun, b: StoredRun) -> str:
    """The side-by-side table for the console: method rows × (A, B, B−A) per metric."""
    rows = compare_rows(a, b)
    method_width = max(len("method"), *(len(r["method"]) for r in rows))
    groups = []
    for metric, title in COMPARED:
        cells = [[_text(r[f"{metric} A"]), _text(r[f"{metric} B"]), _text(r[f"{metric} B-A"], True)] for r in rows]
        width = max(6, -(-(len(title) - 4) // 3), *(len(c) for row in cells for c in row))
        groups.append((title, width, cells))
    head = " " * method_width + "".join("  " + title.center(3 * w + 4) for title, w, _ in groups)
    sub = "method".ljust(method_width) + "".join(
        "  " + "  ".join(n.rjust(w) for n in ("A", "B", "B-A")) for _, w, _ in groups)
    lines = [f"A = {a.run_id}   B = {b.run_id}", head.rstrip(), sub]
    for index, row in enumerate(rows):
        lines.append(row["method"].ljust(method_width) + "".join(
            "  " + "  ".join(c.rjust(w) for c in cells[index]) for _, w, cells in groups))
    return "\n".join(lines)


def _asset_comparison(a: StoredRun, b: StoredRun) -> list[dict[str, Any]]:
    first = {row["asset_id"]: row for row in a.summary["details"]["assets"]}
    second = {row["asset_id"]: row for row in b.summary["details"]["assets"]}
    rows = []
    for asset_id in sorted(set(first) | set(second)):
        row: dict[str, Any] = {"asset": asset_id}
        for key in ("events", "detected", "lead_time_hours_median", "false_alarms", "alerts_opened"):
            row[f"{key} A"] = first.get(asset_id, {}).get(key)
            row[f"{key} B"] = second.get(asset_id, {}).get(key)
        rows.append(row)
    return rows


def write_compare(a: StoredRun, b: StoredRun, out_dir: Path) -> Path:
    """Write ``out_dir/compare.html`` (and the summary plot ``compare_summary.png``); returns the HTML's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = methods_figure([a, b])
    summary.savefig(out_dir / "compare_summary.png", dpi=100)
    parts = _head(f"fusewatch backtest compare: {a.run_id} (A) vs {b.run_id} (B)")
    parts += [_meta(a), _meta(b), "<h2>Methods</h2>", _table(compare_rows(a, b)), _img(summary, "methods"),
              "<h2>Per asset (the runs' own alerts)</h2>", _table(_asset_comparison(a, b))]
    for asset_id in sorted(set(a.assets()) | set(b.assets())):
        parts += [f'<h2 id="{html.escape("asset-" + asset_id)}">{html.escape(asset_id)}</h2>',
                  _img(trace_figure(asset_id, [a, b]), f"traces of {asset_id}")]
    parts.append("</body>\n</html>\n")
    path, partial = out_dir / "compare.html", out_dir / ".compare.html.partial"
    partial.write_text("\n".join(parts), encoding="utf-8")
    partial.replace(path)
    return path


def summary_plot(summary: dict[str, Any], path: Path) -> None:
    """The methods plot of one run's summary, as a PNG file (the summary's ``plots``)."""
    run = StoredRun(path.parent, {"run_id": summary["details"]["run_id"]}, summary, {}, [])
    methods_figure([run]).savefig(path, dpi=100, format="png")
