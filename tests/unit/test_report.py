"""The HTML report: one self-contained file, embedded PNG figures, escaped text, peaks kept when downsampling."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from connectors.report import asset_figure, peak_indices, write_report
from connectors.sinks.sqlite import SqliteSink
from fusewatch.core.events import MODALITIES, Alert, GroundTruth, Score
from fusewatch.core.timeutil import NS_PER_MIN, parse_time

T0 = parse_time("2026-11-30T00:00:00Z")
WINDOWS = 300
IMG = '<img src="data:image/png;base64,'


def add_asset(sink: SqliteSink, asset: str, fused: np.ndarray, *, skip: range = range(0), run: str = "run-1") -> None:
    for i, value in enumerate(fused.tolist()):
        if i in skip:  # the asset is stopped: no windows
            continue
        mods = MODALITIES if i % 3 else ("vibration", "logs")  # the camera misses every third window
        sink.add_score(Score(
            asset_id=asset, window_start=T0 + i * NS_PER_MIN, window_end=T0 + (i + 1) * NS_PER_MIN, fused=value,
            calibrated={m: value for m in mods}, raw={m: value for m in mods},
            contributions={m: value / len(mods) for m in mods}, present={m: m in mods for m in MODALITIES},
            leading="vibration", top_features=[("vib_rms", value)], warmup=i < 30, model_version="v1", run_id=run,
            features={"vib_rms": value},
        ))  # fmt: skip


def add_alert(sink: SqliteSink, asset: str, transition: str, minute: int, fused: float) -> None:
    sink.add_alert(Alert(
        alert_id=f"{asset}:1", asset_id=asset, ts=T0 + minute * NS_PER_MIN, transition=transition,  # type: ignore[arg-type]
        severity="critical" if transition == "escalated" else "warning", fused=fused,
        contributions={"vibration": fused}, leading="vibration", top_features=[], opened_at=T0 + 200 * NS_PER_MIN,
        run_id="run-1",
    ))  # fmt: skip


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SqliteSink]:
    rng = np.random.default_rng(3)
    with SqliteSink(tmp_path / "fusewatch.sqlite") as db:
        healthy = np.clip(0.1 + 0.03 * rng.standard_normal(WINDOWS), 0.0, 1.0)
        faulty = healthy.copy()
        faulty[150:250] += np.linspace(0.0, 0.85, 100)
        add_asset(db, "pump-1", healthy)
        add_asset(db, "motor-2", np.clip(faulty, 0.0, 1.0), skip=range(250, 270))
        for transition, minute, fused in (("opened", 200, 0.6), ("escalated", 230, 0.85), ("closed", 290, 0.1)):
            add_alert(db, "motor-2", transition, minute, fused)
        db.add_ground_truth([
            GroundTruth(asset_id="motor-2", asset_kind="motor", fault_type="winding", onset_at=T0 + 150 * NS_PER_MIN,
                        failure_at=T0 + 250 * NS_PER_MIN, restart_at=T0 + 270 * NS_PER_MIN, first_modality="logs"),
            GroundTruth(asset_id="pump-1", asset_kind="pump", fault_type=None, onset_at=None, failure_at=None,
                        restart_at=None, first_modality=None),
        ])  # fmt: skip
        yield db


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_is_one_html_file_with_one_png_per_figure(sink: SqliteSink, tmp_path: Path) -> None:
    summary: list[dict[str, object]] = [
        {"metric": "events detected", "value": "1/1"},
        {"metric": "lead time", "value": 0.5, "unit": "h <b>"},
    ]
    path = write_report(sink, tmp_path / "out", title='Plant A <B&C> "pumps"', summary_rows=summary)
    assert path == tmp_path / "out" / "report.html" and path.is_file()
    page = path.read_text(encoding="utf-8")
    assert page.count(IMG) == 3  # the fleet overview and one figure per asset
    pngs = images(page)
    assert len(pngs) == 3 and all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000 for png in pngs)
    assert "<title>Plant A &lt;B&amp;C&gt; &quot;pumps&quot;</title>" in page
    assert "<B&C>" not in page and "<b>" not in page and "h &lt;b&gt;" in page
    assert '<h2 id="asset-motor-2">motor-2</h2>' in page and '<h2 id="asset-pump-1">pump-1</h2>' in page
    assert "<th>metric</th><th>value</th><th>unit</th>" in page  # the union of the keys, in order
    assert "<td>events detected</td><td>1/1</td><td></td>" in page and '<td class="num">0.5</td>' in page
    assert "<code>run-1</code>" in page and "winding" in page and "2026-11-30 04:10 UTC" in page  # failure time


def test_report_on_a_run_without_scores_says_so(sink: SqliteSink, tmp_path: Path) -> None:
    page = write_report(sink, tmp_path, run_id="no-such-run").read_text(encoding="utf-8")
    assert IMG not in page and "No scores were recorded" in page and "<code>no-such-run</code>" in page


def test_report_defaults_to_the_latest_run(sink: SqliteSink, tmp_path: Path) -> None:
    add_asset(sink, "fan-9", np.full(50, 0.2), run="run-2")
    page = write_report(sink, tmp_path).read_text(encoding="utf-8")
    assert "<code>run-2</code>" in page and page.count(IMG) == 2 and "fan-9" in page and "pump-1" not in page


def test_asset_figure_marks_alerts_warmup_truth_and_stops(sink: SqliteSink) -> None:
    series, truth = sink.read_scores("motor-2"), sink.read_ground_truth()[0]
    figure = asset_figure("motor-2", series, sink.read_alerts("motor-2"), truth)
    top, bottom = figure.axes
    assert "motor-2" in top.get_title(loc="left") and "winding" in top.get_title(loc="left")
    legend = top.get_legend()
    assert legend is not None
    labels = {text.get_text() for text in legend.get_texts()}
    assert {"fused score", "warm-up", "alert opened", "alert escalated", "alert closed", "fault onset",
            "failure", "restart"} <= labels  # fmt: skip
    fused_line = np.asarray(top.get_lines()[0].get_ydata(), dtype=float)
    assert np.isnan(fused_line).sum() == 1  # the line breaks once, where the asset was stopped
    bottom_legend = bottom.get_legend()
    assert bottom_legend is not None and [t.get_text() for t in bottom_legend.get_texts()] == list(MODALITIES)
    assert "UTC" in bottom.get_xlabel()


def test_downsampling_keeps_every_peak_and_bounds_the_points() -> None:
    values = np.zeros(20_160)
    spikes = [7, 9_999, 20_159]
    values[spikes] = [0.9, 0.7, 0.8]
    values[500] = np.nan
    picked = peak_indices(values)
    assert picked.size <= 2_000 and np.all(np.diff(picked) > 0)
    assert set(spikes) <= set(picked.tolist()) and 500 not in picked
    assert peak_indices(np.arange(5.0)).tolist() == [0, 1, 2, 3, 4]


def test_long_series_still_plot(tmp_path: Path) -> None:
    with SqliteSink(tmp_path / "long.sqlite") as db:
        add_asset(db, "pump-1", np.random.default_rng(0).uniform(0.0, 1.0, 20_160))
        figure = asset_figure("pump-1", db.read_scores("pump-1"), [], None)
    assert np.asarray(figure.axes[0].get_lines()[0].get_xdata()).size <= 2_000
    assert "no fault injected" in figure.axes[0].get_title(loc="left")
