"""A self-contained HTML report of one run: a fleet overview and, per asset, scores, alerts and contributions.

The plots are PNGs embedded as base64 data URIs, so ``report.html`` is one file that opens anywhere. They are
drawn with matplotlib's object-oriented API on the Agg canvas, without pyplot: no GUI, no global backend switch
in the importing process, no figure kept alive by pyplot's registry. Long series are reduced for display to the
peak of each of ~2,000 buckets, so a spike of a single window stays visible.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from connectors.sinks.sqlite import ScoreSeries, SqliteSink
from fusewatch.core.events import MODALITIES, Alert, GroundTruth
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR, to_datetime

DISPLAY_BUCKETS = 2_000
MODALITY_COLOURS = {"vibration": "#1f77b4", "camera": "#9467bd", "logs": "#17becf"}
ALERT_STYLES: dict[str, tuple[str, str, float]] = {  # transition -> (marker, colour, size)
    "opened": ("^", "red", 60.0),
    "escalated": ("^", "darkred", 90.0),
    "closed": ("v", "green", 60.0),
    "acknowledged": ("s", "tab:blue", 40.0),
    "suppressed": ("x", "grey", 40.0),
}
_EPOCH_DAYS = float(mdates.date2num(datetime(1970, 1, 1, tzinfo=UTC)))  # type: ignore[no-untyped-call]
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 0.5rem 0 1.5rem; }
"""


def peak_indices(values: np.ndarray, buckets: int = DISPLAY_BUCKETS) -> np.ndarray:
    """Indices of the largest value of each of about ``buckets`` consecutive chunks (all indices if fewer).

    NaN never wins a bucket unless the whole bucket is NaN.

    >>> peak_indices(np.array([0.1, 0.9, 0.2, 0.3, 0.8, 0.1, 0.5]), buckets=3).tolist()
    [1, 4, 6]
    """
    n = int(values.size)
    if n <= buckets:
        return np.arange(n)
    size = -(-n // buckets)
    padded = np.full(size * -(-n // size), -np.inf)
    padded[:n] = np.where(np.isnan(values), -np.inf, values)
    peaks: np.ndarray = np.argmax(padded.reshape(-1, size), axis=1) + np.arange(0, padded.size, size)
    return peaks


def to_plot_days(ns: np.ndarray | int) -> np.ndarray:
    """Matplotlib date numbers (days) for int nanoseconds since the epoch."""
    return np.asarray(ns, dtype=np.float64) / NS_PER_DAY + _EPOCH_DAYS


def _gap_breaks(ends: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """Positions in ``picked`` before which the full series has a gap (more than 5 typical steps, e.g. a stop)."""
    if ends.size < 3:
        return np.zeros(0, dtype=np.int64)
    steps = np.diff(ends)
    gaps = np.concatenate([[0], np.cumsum(steps > 5 * np.median(steps))])
    return np.flatnonzero(gaps[picked[1:]] > gaps[picked[:-1]]) + 1


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` indices of the runs of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def _img(fig: Figure, alt: str) -> str:
    """The figure as an ``<img>`` with an embedded PNG data URI."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: no pyplot, no global backend
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _format_time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")


def _truth_lines(ax: Axes, truth: GroundTruth | None, *, labels: bool) -> None:
    if truth is None:
        return
    for ns, colour, linestyle, label in (
        (truth.onset_at, "orange", "--", "fault onset"),
        (truth.failure_at, "black", "-", "failure"),
        (truth.restart_at, "grey", ":", "restart"),
    ):
        if ns is not None:
            ax.axvline(float(to_plot_days(ns)), color=colour, linestyle=linestyle, linewidth=1.4,
                       label=label if labels else None)  # fmt: skip


def fleet_figure(
    series: Mapping[str, ScoreSeries],
    truths: Mapping[str, GroundTruth],
    alerts: Mapping[str, Sequence[Alert]],
    bins: int = 1_000,
) -> Figure:
    """One heat strip per asset: the peak fused score per time bin, with failures and opened alerts marked."""
    assets = list(series)
    ends = [s.window_end_ns for s in series.values() if len(s)]
    start, stop = (min(int(e[0]) for e in ends), max(int(e[-1]) for e in ends)) if ends else (0, 1)
    grid = np.full((len(assets), bins), -np.inf)
    for row, asset in enumerate(assets):
        s = series[asset]
        if len(s):
            where = ((s.window_end_ns - start) * bins // (stop - start + 1)).astype(np.int64)
            np.maximum.at(grid[row], where, s.fused)
    grid[np.isneginf(grid)] = np.nan  # no data: drawn grey
    fig = Figure(figsize=(11, 1.3 + 0.42 * len(assets)), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["YlOrRd"].with_extremes(bad="#dddddd")
    image = ax.imshow(
        grid,
        aspect="auto",
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(float(to_plot_days(start)), float(to_plot_days(stop)), len(assets) - 0.5, -0.5),
    )
    for row, asset in enumerate(assets):
        truth = truths.get(asset)
        for ns, colour in ((truth.onset_at, "orange"), (truth.failure_at, "black")) if truth else ():
            if ns is not None:
                ax.plot(float(to_plot_days(ns)), row, marker="|", color=colour, markersize=22, markeredgewidth=2.5)
        opened = [a.ts for a in alerts.get(asset, ()) if a.transition == "opened"]
        if opened:
            ax.scatter(
                to_plot_days(np.array(opened)), np.full(len(opened), row - 0.3), marker="v", color="red", s=25, zorder=3
            )
    ax.set_yticks(range(len(assets)), assets)
    ax.set_title(
        "Fleet overview — peak fused anomaly score per time bin (orange | fault onset, black | failure, "
        "red ▼ alert opened)",
        fontsize=10,
    )
    _format_time_axis(ax)
    fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03).set_label("fused score (0–1)")
    return fig


def asset_figure(asset: str, s: ScoreSeries, alerts: Sequence[Alert], truth: GroundTruth | None) -> Figure:
    """Fused score with alerts, warm-up and ground truth (top) and per-modality contributions (bottom)."""
    fig = Figure(figsize=(12, 5.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    picked = peak_indices(s.fused)
    breaks = _gap_breaks(s.window_end_ns, picked)
    x = np.insert(to_plot_days(s.window_end_ns[picked]), breaks, np.nan)
    top.plot(x, np.insert(s.fused[picked], breaks, np.nan), color="#333333", linewidth=0.9, label="fused score")
    for number, (first, last) in enumerate(_true_runs(s.warmup)):
        top.axvspan(
            float(to_plot_days(s.window_end_ns[first])),
            float(to_plot_days(s.window_end_ns[last])),
            color="#bbbbbb",
            alpha=0.35,
            linewidth=0,
            label="warm-up" if number == 0 else None,
        )
    for transition, (marker, colour, size) in ALERT_STYLES.items():
        chosen = [a for a in alerts if a.transition == transition]
        if chosen:
            top.scatter(to_plot_days(np.array([a.ts for a in chosen])), [a.fused for a in chosen], marker=marker,
                        color=colour, s=size, zorder=4, label=f"alert {transition}", edgecolors="white",
                        linewidths=0.5)  # fmt: skip
    _truth_lines(top, truth, labels=True)
    _truth_lines(bottom, truth, labels=False)
    fault = "no fault injected" if truth is None or truth.fault_type is None else f"fault: {truth.fault_type}"
    kind = f" ({truth.asset_kind})" if truth is not None else ""
    top.set_title(f"{asset}{kind} — {fault}", fontsize=11, loc="left")
    top.set_ylabel("fused anomaly score")
    top.set_ylim(0.0, 1.05)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)  # never hides data
    stacks = [np.insert(s.contributions[m][picked], breaks, np.nan) for m in MODALITIES]
    bottom.stackplot(
        x, *stacks, labels=list(MODALITIES), colors=[MODALITY_COLOURS[m] for m in MODALITIES], alpha=0.85, linewidth=0
    )
    bottom.set_ylabel("contribution to\nfused score")
    bottom.set_ylim(0.0, max(1e-6, float(np.nanmax(s.fused[picked]))) * 1.05 if len(s) else 1.0)
    bottom.grid(alpha=0.3)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False, title="modality")
    _format_time_axis(bottom)
    return fig


def _cell(value: object) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return f"<td>{html.escape(str(value))}</td>"
    text = f"{value:.4g}" if isinstance(value, float | np.floating) else str(value)
    return f'<td class="num">{html.escape(text)}</td>'


def _table(rows: Sequence[Mapping[str, object]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>\n" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def _when(ns: int | None) -> str | None:
    return None if ns is None else to_datetime(ns).strftime("%Y-%m-%d %H:%M UTC")


def _asset_row(asset: str, s: ScoreSeries, alerts: Iterable[Alert], truth: GroundTruth | None) -> dict[str, object]:
    opened = sorted(a.ts for a in alerts if a.transition == "opened")
    lead = None
    if truth is not None and truth.failure_at is not None:
        before = [ts for ts in opened if ts <= truth.failure_at and (truth.onset_at is None or ts >= truth.onset_at)]
        lead = f"{(truth.failure_at - before[0]) / NS_PER_HOUR:.1f} h" if before else "missed"
    return {
        "asset": asset, "kind": truth.asset_kind if truth else None, "fault": truth.fault_type if truth else None,
        "fault onset": _when(truth.onset_at if truth else None), "failure": _when(truth.failure_at if truth else None),
        "windows": len(s), "peak fused": float(s.fused.max()) if len(s) else None, "alerts opened": len(opened),
        "first alert": _when(opened[0] if opened else None), "warning lead before failure": lead,
    }  # fmt: skip


def write_report(
    sink: SqliteSink,
    out_dir: str | Path,
    *,
    run_id: str | None = None,
    title: str = "fusewatch report",
    summary_rows: Sequence[Mapping[str, object]] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` for one run (default: the latest run with scores) and return its path.

    Parameters
    ----------
    sink
        The SQLite sink to read scores, alerts and ground truth from.
    out_dir
        Directory of the report (created if needed).
    run_id
        The run to report on; ``None`` picks the latest run that has scores.
    title
        Page title (escaped).
    summary_rows
        Optional rows of a summary table (e.g. evaluation metrics); the union of their keys makes the columns.
    """
    run = run_id if run_id is not None else sink.latest_run()
    assets = sink.asset_ids(run) if run is not None else []
    truths = {t.asset_id: t for t in sink.read_ground_truth()}
    series = {asset: sink.read_scores(asset, run) for asset in assets}
    alerts = {asset: sink.read_alerts(asset, run) for asset in assets}
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>',
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>",
        f'<p class="meta">Run <code>{html.escape(run or "(none)")}</code> · generated {generated} · '
        f"{len(assets)} asset(s) · {sum(len(s) for s in series.values()):,} scored windows</p>",
    ]
    if summary_rows:
        parts += ["<h2>Summary</h2>", _table(summary_rows)]
    if not assets:
        parts.append("<p>No scores were recorded for this run.</p>")
    else:
        parts += ["<h2>Fleet overview</h2>", _img(fleet_figure(series, truths, alerts), "fleet overview"),
                  _table([_asset_row(a, series[a], alerts[a], truths.get(a)) for a in assets])]  # fmt: skip
        for asset in assets:
            figure = asset_figure(asset, series[asset], alerts[asset], truths.get(asset))
            parts += [f'<h2 id="{html.escape("asset-" + asset)}">{html.escape(asset)}</h2>',
                      _img(figure, f"scores of {asset}")]  # fmt: skip
    parts.append("</body>\n</html>\n")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path, partial = out / "report.html", out / ".report.html.partial"
    partial.write_text("\n".join(parts), encoding="utf-8")
    partial.replace(path)  # atomic: a browser or a watcher never sees half a report
    return path
