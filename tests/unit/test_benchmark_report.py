"""The benchmark report: docs/benchmarks.md rendered from a results dict (no benchmark is run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import REGISTRY
from benchmarks.run import cell, render_markdown, stat, write_results


def _results(met: bool) -> dict[str, Any]:
    return {
        "machine": {"cpu": "Test CPU @ 2.0GHz", "cores": 2, "memory": "8.0 GiB", "python": "3.11.7", "os": "Linux"},
        "date": "2026-01-05",
        "versions": {"fusewatch": "0.1.0", "numpy": "2.0.0"},
        "benchmarks": {
            "webhooks": {
                "title": "Scoring throughput with a hanging webhook endpoint",
                "goal": {"text": "hanging ≥ 0.9 × healthy", "met": met, "value": "hanging / healthy = 0.950"},
                "method": "The demo, three conditions, interleaved.",
                "parameters": {"assets": 4, "days": 0.75, "alerts": {"open_k": 1, "cooldown_s": 0.0}},
                "tables": [{"caption": "Throughput by condition", "columns": ["condition", "windows/s", "windows"],
                            "rows": [["none", stat([150.0, 140.0, 160.0]), 4320],
                                     ["hanging | stuck", {"median": 142.5, "min": 99.25, "max": 150.0}, 4320]]}],
                "figures": {"transitions": [236]},
                "notes": ["Every run raised 236 transitions."],
                "quick": False,
            },
        },
    }


def test_the_report_has_the_machine_a_section_and_a_table_per_benchmark() -> None:
    text = render_markdown(_results(met=True))
    assert text.startswith("# Benchmarks\n")
    assert "Test CPU @ 2.0GHz, 2 cores, 8.0 GiB" in text and "2026-01-05" in text and "numpy 2.0.0" in text
    assert "## Scoring throughput with a hanging webhook endpoint" in text
    assert "| condition | windows/s | windows |\n|---|---|---|\n" in text
    assert "| none | 150 (140–160) | 4320 |" in text
    assert "| hanging \\| stuck | 142 (99.2–150) | 4320 |" in text  # a pipe in a cell does not split it
    assert "How it is measured: The demo, three conditions, interleaved." in text
    assert "assets: 4; days: 0.75; alerts: open_k=1, cooldown_s=0" in text
    assert "- Every run raised 236 transitions." in text
    assert "Quick run" not in text


def test_the_goal_verdict_follows_the_results() -> None:
    assert "**Goal met.** Measured: hanging / healthy = 0.950." in render_markdown(_results(met=True))
    missed = render_markdown(_results(met=False))
    assert "**Goal not met.**" in missed and "**Goal met.**" not in missed


def test_a_quick_run_is_flagged_and_an_empty_file_renders() -> None:
    results = _results(met=True)
    results["benchmarks"]["webhooks"]["quick"] = True
    assert "Quick run (`--quick`)" in render_markdown(results)
    assert "No benchmark has been run yet." in render_markdown({})


def test_cells_and_statistics() -> None:
    assert stat([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "values": [3.0, 1.0, 2.0]}
    assert cell({"median": 0.9712, "min": 0.9, "max": 1.02}) == "0.971 (0.900–1.02)"
    assert (cell(True), cell(12), cell(12.345), cell(1234.5)) == ("yes", "12", "12.3", "1234")


def test_results_json_is_written_with_sorted_keys(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results({"versions": {"b": "1", "a": "2"}, "date": "2026-01-05"}, path)
    text = path.read_text(encoding="utf-8")
    assert text.index('"date"') < text.index('"versions"') and text.index('"a"') < text.index('"b"')
    assert json.loads(text)["versions"] == {"a": "2", "b": "1"}


def test_every_registered_benchmark_is_a_module_of_the_package() -> None:
    assert REGISTRY and all(module.startswith("benchmarks.") for module in REGISTRY.values())


def test_a_benchmark_with_statistics_gets_a_plot_and_the_report_links_it(tmp_path: Path) -> None:
    from benchmarks.plots import plot_benchmark
    from benchmarks.run import write_plots

    results = _results(met=True)
    images = write_plots(results, tmp_path)
    assert images == {"webhooks": "img/benchmarks/webhooks.png"}
    assert (tmp_path / images["webhooks"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Scoring throughput with a hanging webhook endpoint](img/benchmarks/webhooks.png)" in render_markdown(
        results, images)
    no_statistics = {"title": "t", "tables": [{"columns": ["a", "b"], "rows": [["x", 1]]}]}
    assert not plot_benchmark(no_statistics, tmp_path / "none.png") and not (tmp_path / "none.png").exists()
