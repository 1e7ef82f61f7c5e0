"""Plots for docs/benchmarks.md: one PNG per benchmark, drawn from its results (no benchmark is run).

Every statistic column of a benchmark's tables (cells ``{"median", "min", "max"}``) becomes a panel of
horizontal bars, one per row, at the median with a whisker from the minimum to the maximum, so conditions are
compared at a glance and the spread of the runs is visible; a table's ``goals`` (column title -> value) are
drawn as dashed red lines. Drawn with matplotlib's object-oriented API on the
Agg canvas (no pyplot, no GUI backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Panel = tuple[str, list[str], list[dict[str, float]], float | None]  # column, row labels, statistics, goal


def _is_stat(value: Any) -> bool:
    return isinstance(value, dict) and {"median", "min", "max"} <= value.keys()


def panels(bench: dict[str, Any]) -> list[Panel]:
    """The statistic columns of a benchmark's tables, with the rows' labels (their first cell).

    >>> table = {"columns": ["condition", "windows/s", "windows"],
    ...          "rows": [["none", {"median": 2.0, "min": 1.0, "max": 3.0}, 10], ["slow", "–", 10]]}
    >>> panels({"tables": [{**table, "goals": {"windows/s": 1.5}}]})
    [('windows/s', ['none'], [{'median': 2.0, 'min': 1.0, 'max': 3.0}], 1.5)]
    """
    found: list[Panel] = []
    for table in bench.get("tables", []):
        goals = table.get("goals", {})
        for column, title in enumerate(table["columns"][1:], start=1):
            rows = [row for row in table["rows"] if _is_stat(row[column])]
            if rows:
                found.append((str(title), [str(row[0]) for row in rows], [row[column] for row in rows],
                              goals.get(title)))
    return found


def plot_benchmark(bench: dict[str, Any], path: Path) -> bool:
    """Write the benchmark's panels to ``path`` (PNG); False (and nothing written) when it has no statistics."""
    found = panels(bench)
    if not found:
        return False
    columns = min(3, len(found))
    grid_rows = -(-len(found) // columns)
    height = max(1.6, 0.45 * max(len(labels) for _, labels, _, _ in found) + 1.0)
    figure = Figure(figsize=(4.2 * columns, height * grid_rows), layout="constrained")
    FigureCanvasAgg(figure)
    for index, (title, labels, stats, goal) in enumerate(found):
        axes = figure.add_subplot(grid_rows, columns, index + 1)
        medians = [s["median"] for s in stats]
        low = [s["median"] - s["min"] for s in stats]
        high = [s["max"] - s["median"] for s in stats]
        positions = list(range(len(labels)))[::-1]
        axes.barh(positions, medians, xerr=[low, high], color="#4c72b0", ecolor="black", capsize=3, height=0.6)
        if goal is not None:
            axes.axvline(goal, color="red", linestyle="--", linewidth=1, label=f"goal {goal:g}")
            axes.legend(fontsize=7, loc="lower right")
        axes.set_yticks(positions, labels, fontsize=8)
        axes.set_title(title, fontsize=9)
        axes.tick_params(axis="x", labelsize=8)
        axes.grid(axis="x", alpha=0.3)
    figure.suptitle(str(bench.get("title", "")), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return True
