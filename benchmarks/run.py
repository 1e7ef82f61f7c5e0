"""The benchmark harness: run the registered benchmarks, write ``benchmarks/results.json``, render the docs.

``python -m benchmarks`` runs every benchmark of :data:`benchmarks.REGISTRY`; ``--only NAME`` runs one (the
others keep their last results); ``--quick`` runs a small smoke version and writes under ``out/benchmarks``
instead of the committed files; ``--render`` only regenerates ``docs/benchmarks.md`` from ``results.json``.

A benchmark module has ``run(quick: bool, log: Callable[[str], None]) -> dict`` returning::

    {"title": str,                       # the section heading
     "method": str,                      # how it is measured (one paragraph of markdown)
     "goal": {"text": str, "met": bool, "value": str},
     "parameters": {name: value},        # what was run (sizes, settings)
     "tables": [{"caption": str, "columns": [str], "rows": [[cell]]}],
     "figures": {...},                   # the raw numbers, free form
     "notes": [str]}                     # observations made during the run (optional)

A table cell is a string, a number, or a statistic ``{"median": x, "min": y, "max": z}`` (see :func:`stat`),
rendered as ``median (min–max)``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks import REGISTRY
from benchmarks.plots import plot_benchmark

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
DOCS = ROOT / "docs" / "benchmarks.md"
QUICK_DIR = ROOT / "out" / "benchmarks"
PACKAGES = ("fusewatch", "numpy", "scipy", "torch", "river", "pydantic", "faust-streaming", "kafka-python")


def stat(values: Iterable[float], digits: int = 3) -> dict[str, Any]:
    """Median, min, max and the values themselves (rounded to ``digits`` decimals).

    >>> stat([3.0, 1.0, 2.0])
    {'median': 2.0, 'min': 1.0, 'max': 3.0, 'values': [3.0, 1.0, 2.0]}
    """
    data = [float(v) for v in values]
    return {"median": round(median(data), digits), "min": round(min(data), digits),
            "max": round(max(data), digits), "values": [round(v, digits) for v in data]}


def method_text(doc: str | None) -> str:
    r"""A benchmark module's method paragraph: its docstring after the title line, on one line.

    >>> method_text("Title.\n\nFirst line\nsecond line.")
    'First line second line.'
    >>> method_text(None)
    ''
    """
    if not doc or "\n\n" not in doc:
        return ""
    return doc.split("\n\n", 1)[1].strip().replace("\n", " ")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, Any]:
    """What the benchmarks ran on."""
    return {"cpu": _cpu_model(), "cores": os.cpu_count() or 1, "memory": _memory(),
            "python": platform.python_version(), "os": platform.platform(terse=True)}


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that matter for the figures."""
    found: dict[str, str] = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _number(value: float) -> str:
    """A figure with as many decimals as its size deserves."""
    if isinstance(value, int):
        return str(value)
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else 3
    return f"{value:.{digits}f}"


def cell(value: Any) -> str:
    """One table cell as markdown.

    >>> cell({"median": 101.234, "min": 99.5, "max": 104.0}), cell(0.9712), cell(12), cell("ok")
    ('101 (99.5–104)', '0.971', '12', 'ok')
    """
    if isinstance(value, dict) and {"median", "min", "max"} <= value.keys():
        return f"{_number(value['median'])} ({_number(value['min'])}–{_number(value['max'])})"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _number(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(table: dict[str, Any]) -> list[str]:
    columns = [str(c) for c in table["columns"]]
    lines = [f"**{table['caption']}**", ""] if table.get("caption") else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table["rows"]]
    return [*lines, ""]


def _parameter(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_parameter(v)}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else cell(value)


def render_markdown(results: dict[str, Any], images: dict[str, str] | None = None) -> str:
    """``docs/benchmarks.md`` from a results dict (the content of ``results.json``); ``images`` maps a benchmark's
    name to its plot's path relative to the markdown file."""
    images = images or {}
    env = results.get("machine", {})
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks`) from `benchmarks/results.json`; do not edit by hand.",
        "Each figure is the median of the repetitions with the minimum–maximum in brackets. The conditions of a",
        "benchmark are run interleaved (rotating order), so background load on the machine spreads over all of them.",
        "",
        f"- **Date:** {results.get('date', 'unknown')}",
        f"- **Machine:** {env.get('cpu', 'unknown')}, {env.get('cores', '?')} cores, {env.get('memory', '?')} memory",
        f"- **Software:** Python {env.get('python', '?')} on {env.get('os', '?')}; "
        + ", ".join(f"{name} {version}" for name, version in results.get("versions", {}).items()),
        "",
    ]
    benchmarks: dict[str, Any] = results.get("benchmarks", {})
    if not benchmarks:
        lines += ["No benchmark has been run yet.", ""]
    for name, bench in benchmarks.items():
        goal = bench.get("goal", {})
        lines += [f"## {bench.get('title', name)}", "", f"`python -m benchmarks --only {name}`", ""]
        if bench.get("quick"):
            lines += ["*Quick run (`--quick`): smaller and fewer repetitions, not representative.*", ""]
        if goal:
            verdict = "**Goal met.**" if goal.get("met") else "**Goal not met.**"
            measured = f" Measured: {goal['value']}." if goal.get("value") else ""
            lines += [f"Goal: {str(goal.get('text', '')).rstrip('.')}. {verdict}{measured}", ""]
        for table in bench.get("tables", []):
            lines += _table(table)
        if name in images:
            lines += [f"![{bench.get('title', name)}]({images[name]})", ""]
        if bench.get("method"):
            lines += ["How it is measured: " + str(bench["method"]), ""]
        if bench.get("parameters"):
            lines += ["Parameters: " + "; ".join(f"{k}: {_parameter(v)}" for k, v in bench["parameters"].items()),
                      ""]
        notes = bench.get("notes", [])
        if notes:
            lines += ["Observations:", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_results(results: dict[str, Any], path: Path) -> None:
    """``results.json``: sorted keys, so a re-run changes only the figures that changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_benchmarks(names: Sequence[str], quick: bool, previous: dict[str, Any],
                   log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Run ``names``; the results of the others are kept from ``previous``."""
    benchmarks = dict(previous.get("benchmarks", {}))
    for name in names:
        module = importlib.import_module(REGISTRY[name])
        log(f"[{name}] starting")
        started = time.perf_counter()
        result: dict[str, Any] = module.run(quick, log)
        result["quick"] = quick
        result["run_seconds"] = round(time.perf_counter() - started, 1)
        benchmarks[name] = result
        log(f"[{name}] done in {result['run_seconds']:.0f} s")
    return {"machine": machine(), "date": datetime.date.today().isoformat(), "versions": versions(),
            "benchmarks": {name: benchmarks[name] for name in sorted(benchmarks)}}


def write_plots(results: dict[str, Any], docs_dir: Path) -> dict[str, str]:
    """One PNG per benchmark under ``docs_dir/img/benchmarks``: the module's own ``plot(result, path)`` when it has
    one, else the bars of its tables' statistics (:func:`benchmarks.plots.plot_benchmark`). Returns the paths
    relative to ``docs_dir``."""
    images: dict[str, str] = {}
    for name, bench in results.get("benchmarks", {}).items():
        relative = f"img/benchmarks/{name}.png"
        module = importlib.import_module(REGISTRY[name]) if name in REGISTRY else None
        draw = getattr(module, "plot", None) or plot_benchmark
        if draw(bench, docs_dir / relative):
            images[name] = relative
    return images


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(REGISTRY), action="append", help="run only this benchmark")
    parser.add_argument("--quick", action="store_true",
                        help=f"small smoke run, written under {QUICK_DIR.relative_to(ROOT)} (not the committed files)")
    parser.add_argument("--render", action="store_true", help="only regenerate the markdown from results.json")
    args = parser.parse_args(argv)
    results_path, docs_path = (QUICK_DIR / "results.json", QUICK_DIR / "benchmarks.md") if args.quick \
        else (RESULTS, DOCS)
    previous: dict[str, Any] = {}
    if results_path.exists():
        previous = json.loads(results_path.read_text(encoding="utf-8"))
    if args.render:
        results = previous
    else:
        results = run_benchmarks(args.only or sorted(REGISTRY), args.quick, previous)
        write_results(results, results_path)
    docs_path.parent.mkdir(parents=True, exist_ok=True)
    docs_path.write_text(render_markdown(results, write_plots(results, docs_path.parent)), encoding="utf-8")
    _log(f"wrote {results_path.relative_to(ROOT)} and {docs_path.relative_to(ROOT)}")
    return 0
