"""The latency benchmark's pure helpers: which message closed a window, percentiles, latencies per condition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.latency import Sent, burst_figures, close_times, latencies, percentile, summarize
from fusewatch.core.events import MaintenanceLog
from fusewatch.core.timeutil import NS_PER_S
from streams.aligner import Aligner, AlignerConfig

S = NS_PER_S
WINDOW, LATENESS = 60 * S, 30 * S


def test_a_window_closes_at_the_first_message_past_its_end_plus_the_lateness() -> None:
    log = [Sent("a", 0, 100.0, "x"),          # window [0, 60)
           Sent("a", 30 * S, 130.0, "x"),
           Sent("a", 60 * S, 160.0, "x"),     # window [60, 120); 60 < 60 + 30: closes nothing
           Sent("a", 89 * S, 189.0, "x"),
           Sent("a", 90 * S, 190.0, "y"),     # = end + lateness: closes [0, 60)
           Sent("a", 95 * S, 195.0, "y")]
    closes = close_times(log, WINDOW, LATENESS)
    assert list(closes) == [("a", 60 * S)]
    assert closes["a", 60 * S] == log[4]  # the first such message, not a later one


def test_assets_are_independent_and_an_empty_window_is_never_closed() -> None:
    log = [Sent("a", 0, 1.0, "x"), Sent("b", 10 * S, 2.0, "x"),
           Sent("b", 200 * S, 3.0, "x"),     # closes b's [0, 60); nothing of b in [60, 180): no such window
           Sent("a", 150 * S, 4.0, "x"),     # closes a's [0, 60)
           Sent("b", 300 * S, 5.0, "x")]     # closes b's [180, 240)
    closes = close_times(log, WINDOW, LATENESS)
    assert {key: sent.wall_s for key, sent in closes.items()} == {
        ("b", 60 * S): 3.0, ("a", 60 * S): 4.0, ("b", 240 * S): 5.0}


def test_close_times_agree_with_the_aligner() -> None:
    rng = np.random.default_rng(1)
    times = np.sort(rng.integers(0, 20 * 60 * S, 300))
    log = [Sent("pump-01", int(ts), float(i), "x") for i, ts in enumerate(times)]
    aligner = Aligner(AlignerConfig(window_s=60, allowed_lateness_s=30))
    by_aligner: dict[tuple[str, int], float] = {}
    for sent in log:
        event = MaintenanceLog(asset_id=sent.asset_id, ts=sent.ts_ns, text=f"note {sent.wall_s}")
        for window in aligner.add(event, frame_pixels=None, now_ns=0).windows:
            by_aligner[window.asset_id, window.end_ns] = sent.wall_s
    assert by_aligner
    assert {key: sent.wall_s for key, sent in close_times(log, WINDOW, LATENESS).items()} == by_aligner


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [0.3, 0.1, 0.9, 0.5, 0.2, 0.7, 1.4]
    for q in (0, 1, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([2.0], 99) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_reports_count_percentiles_and_max() -> None:
    values = [float(i) for i in reversed(range(101))]  # 100 .. 0 s
    assert summarize(values) == {"count": 101, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert summarize([0.0, 1.0]) == {"count": 2, "p50": 0.5, "p95": 0.95, "p99": 0.99, "max": 1.0}
    assert summarize([]) == {"count": 0}


def test_latencies_are_per_condition_skip_early_closes_and_count_unseen_windows() -> None:
    closes = {("a", 60): Sent("a", 90, 10.0, "staggered"), ("b", 60): Sent("b", 90, 20.0, "staggered"),
              ("c", 60): Sent("c", 90, 30.0, "synchronized"), ("d", 60): Sent("d", 90, 30.0, "synchronized")}
    visible = {("a", 60): 10.5, ("b", 60): 20.25, ("c", 60): 31.0}
    found, missing = latencies(closes, visible, since_s=15.0)
    assert found == {"staggered": [0.25], "synchronized": [1.0]}  # a closed before since_s: left out
    assert missing == {"staggered": 0, "synchronized": 1}


def test_burst_figures_measure_the_workers_spread_over_a_burst() -> None:
    closes = {(f"a{i}", 60): Sent(f"a{i}", 90, 100.0, "synchronized") for i in range(5)}
    closes["s", 60] = Sent("s", 90, 100.0, "staggered")
    produced = {(f"a{i}", 60): 100.1 + 0.01 * i for i in range(5)}
    [burst] = burst_figures(closes, produced, since_s=0.0)
    assert burst["windows"] == 5
    assert burst["first_s"] == pytest.approx(0.1)
    assert burst["last_s"] == pytest.approx(0.14)
    assert burst["ms_per_window"] == pytest.approx(10.0)


def test_the_plot_draws_the_recorded_distributions_and_nothing_without_them(tmp_path: Path) -> None:
    from benchmarks.latency import plot

    bench = {"title": "latency", "figures": {"staggered": {"close_to_visible_ms": [80, 90, 300]},
                                             "synchronized": {"close_to_visible_ms": [900, 1500]}}}
    assert plot(bench, tmp_path / "latency.png")
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plot({"figures": {"staggered": {"count": 0}}}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
