"""The timeline of docs/event-time.md: one asset's streams through the real :class:`~streams.aligner.Aligner`.

``python benchmarks/event_time_figure.py`` writes ``docs/img/event_time_timeline.png``. Nothing of the rules is
re-implemented here: the script only decides *when* (processing time, on a fake clock) each event of a scripted
half hour reaches the aligner, and draws what the aligner answers: the outcome of every event, the windows it
closes and what they carry.

The scenario (event times in plant minutes, the processing clock runs with the plant: a live stream):

- the camera sends a frame every minute, 40 s after taking it (its producer batches): normally it is the
  slowest stream, so it holds the asset's windows;
- vibration sends a snapshot every minute, 5 s after taking it, until its gateway loses the broker at minute
  9 and buffers; at 18:10 it reconnects and flushes the snapshots of minutes 10-18 in one burst;
- the maintenance log has two entries, one written 10 minutes after the work it records.

The figure's ``max_hold_s`` (5 min) is small so that the bound shows within the outage; ``modality_idle_s``
(10 min) is raised from its default (2 min) so that the nine-minute outage is held at all.

>>> steps = [(a, event.ts // S) for a, event, _ in arrivals() if isinstance(event, VibrationChunk)]
>>> steps[9], steps[10], steps[-1]
((545.0, 540), (1090.0, 600), (1805.0, 1800))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from fusewatch.core.codec import InputEvent
from fusewatch.core.events import CameraFrame, MaintenanceLog, Modality, VibrationChunk
from fusewatch.core.timeutil import NS_PER_S
from streams.aligner import AlignedWindow, Aligner, AlignerConfig

S = NS_PER_S
ASSET = "pump-01"
OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "event_time_timeline.png"

CONFIG = AlignerConfig(window_s=60, allowed_lateness_s=30, modality_idle_s=600, max_hold_s=300)
MINUTES = 31  # event time covered: minutes 0..30
CAMERA_DELAY_S = 40.0
VIBRATION_DELAY_S = 5.0
OUTAGE_FROM_MIN = 10  # the first snapshot the gateway buffers
FLUSH_AT_S = 18 * 60 + 10.0  # processing time of the reconnection
FLUSH_SPACING_S = 0.5
LOGS = ((4.5, 4.5 * 60 + 10.0, "inspection: ok"), (14.0, 24 * 60 + 15.0, "greased bearing"))  # (min, arrives, text)
TICK_S = 5.0  # the runner's timer: expire_idle every this long of processing time

COLOURS: dict[Modality, str] = {"vibration": "#4c72b0", "camera": "#55a868", "logs": "#8172b2"}
ROWS: dict[Modality, int] = {"logs": 0, "camera": 1, "vibration": 2}

Arrival = tuple[float, InputEvent, np.ndarray | None]  # (processing time s, event, decoded pixels)


def _vibration(minute: float) -> VibrationChunk:
    return VibrationChunk(asset_id=ASSET, sensor_id="de", ts=round(minute * 60 * S), sample_rate_hz=100.0,
                          unit="g", samples=np.ones(10, dtype=np.float32))


def _frame(minute: float) -> tuple[CameraFrame, np.ndarray]:
    event = CameraFrame(asset_id=ASSET, camera_id="cam-1", ts=round(minute * 60 * S), width=4, height=4,
                        encoding="jpeg", data=b"\xff\xd8\xff\xe0fake")
    return event, np.zeros((4, 4), dtype=np.uint8)


def arrivals() -> list[Arrival]:
    """Every event of the scenario with the processing time it reaches the aligner, in that order."""
    out: list[Arrival] = []
    flushed = 0
    for minute in range(MINUTES):
        event, pixels = _frame(minute)
        out.append((minute * 60 + CAMERA_DELAY_S, event, pixels))
        sent = minute * 60 + VIBRATION_DELAY_S
        if minute >= OUTAGE_FROM_MIN and minute * 60 < FLUSH_AT_S:  # taken during the outage: buffered
            sent = FLUSH_AT_S + FLUSH_SPACING_S * flushed
            flushed += 1
        out.append((sent, _vibration(minute), None))
    for log_minute, arrives, text in LOGS:
        out.append((arrives, MaintenanceLog(asset_id=ASSET, ts=round(log_minute * 60 * S), text=text), None))
    return sorted(out, key=lambda item: item[0])


@dataclass
class Run:
    """What the aligner answered, in minutes: event outcomes, closed windows, the watermark over the run."""

    events: list[tuple[Modality, float, float, str]] = field(default_factory=list)  # modality, ts, arrived, outcome
    windows: list[tuple[AlignedWindow, float]] = field(default_factory=list)  # window, closed at (processing)
    watermark: list[tuple[float, float]] = field(default_factory=list)  # (processing, watermark)
    closed_up_to: list[tuple[float, float]] = field(default_factory=list)  # (processing, end of last closed)
    newest: list[tuple[float, float]] = field(default_factory=list)  # (processing, newest event time)


def run() -> Run:
    """Feed the scenario through a real aligner on a fake processing clock."""
    now = [0]
    aligner = Aligner(CONFIG, clock=lambda: now[0])
    result = Run()
    pending = arrivals()
    end_s = pending[-1][0] + 1.0
    tick_s = 0.0
    newest = closed = -np.inf

    def record(processing_s: float, windows: list[AlignedWindow]) -> None:
        nonlocal closed
        for window in windows:
            result.windows.append((window, processing_s / 60))
            closed = max(closed, window.end_ns / S / 60)
        state = aligner._assets.get(ASSET)  # read only: the watermark the aligner would close windows at now
        if state is not None:
            result.watermark.append((processing_s / 60, aligner._watermark(state) / S / 60))
            result.closed_up_to.append((processing_s / 60, closed))
            result.newest.append((processing_s / 60, newest))

    while tick_s <= end_s:
        while pending and pending[0][0] <= tick_s:
            arrived_s, event, pixels = pending.pop(0)
            now[0] = round(arrived_s * S)
            outcome = aligner.add(event, pixels, now[0])
            modality: Modality = ("vibration" if isinstance(event, VibrationChunk)
                                  else "camera" if isinstance(event, CameraFrame) else "logs")
            result.events.append((modality, event.ts / S / 60, arrived_s / 60, outcome.outcome))
            if outcome.outcome == "accepted":
                newest = max(newest, event.ts / S / 60)
            record(arrived_s, outcome.windows)
        now[0] = round(tick_s * S)
        record(tick_s, aligner.expire_idle(now[0]))
        tick_s += TICK_S
    return result


def _steps(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """A curve of (processing, event time) as a staircase drawn with event time on x and processing on y."""
    xs: list[float] = []
    ys: list[float] = []
    for processing, value in points:
        if xs and value == xs[-1]:
            continue
        if xs:
            xs.append(xs[-1])
            ys.append(processing)
        xs.append(value)
        ys.append(processing)
    if xs:
        xs.append(xs[-1])
        ys.append(points[-1][0])
    return xs, ys


def _draw_rows(axes: Axes, result: Run) -> None:
    for window, _ in result.windows:
        colour = "#c6dbef" if window.present["vibration"] else "#fdd0a2"
        axes.axvspan(window.start_ns / S / 60, window.end_ns / S / 60, color=colour, alpha=0.9, lw=0)
        axes.axvline(window.start_ns / S / 60, color="white", lw=0.8)
    flush_min = FLUSH_AT_S / 60
    for modality, ts, arrived, outcome in result.events:
        y = ROWS[modality]
        if outcome == "late":
            axes.plot(ts, y, marker="X", color="#c44e52", markersize=11, ls="none")
        elif modality == "vibration" and arrived >= flush_min and ts < flush_min - VIBRATION_DELAY_S / 60:
            axes.plot(ts, y, marker="o", mfc="white", mec=COLOURS[modality], mew=1.6, markersize=7, ls="none")
        else:
            axes.plot(ts, y, marker="o" if modality != "logs" else "s", color=COLOURS[modality], markersize=6,
                      ls="none")
    axes.set_yticks(list(ROWS.values()), [name for name in ROWS])
    axes.set_ylim(-0.6, 2.6)
    axes.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)


def _draw_clock(axes: Axes, result: Run) -> None:
    for modality, ts, arrived, outcome in result.events:
        marker = "X" if outcome == "late" else ("o" if modality != "logs" else "s")
        colour = "#c44e52" if outcome == "late" else COLOURS[modality]
        axes.plot(ts, arrived, marker=marker, color=colour, markersize=4 if outcome != "late" else 8, ls="none",
                  alpha=0.8)
    axes.plot(*_steps(result.newest), color="#999999", lw=1.2, ls="--")
    bound = [(p, v - (CONFIG.max_hold_s + CONFIG.allowed_lateness_s) / 60) for p, v in result.newest]
    axes.plot(*_steps(bound), color="#c44e52", lw=1.0, ls=":")
    axes.plot(*_steps(result.watermark), color="black", lw=2.0)
    axes.set_ylabel("processing time (min)")
    axes.set_ylim(0, MINUTES + 0.5)
    axes.grid(True, color="#eeeeee", lw=0.6)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def _annotate(clock: Axes, result: Run) -> None:
    box = {"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#888888", "lw": 0.6}
    arrow = {"arrowstyle": "->", "lw": 0.8}
    clock.annotate("camera holds: its frames come 40 s after\nthe snapshots; watermark = camera - 30 s",
                   xy=(4.5, 6.1), xytext=(7.5, 1.2), fontsize=8.5, bbox=box, arrowprops=arrow)
    clock.annotate("vibration silent: holds until idle\n(modality_idle_s) or max_hold_s", xy=(8.5, 12.5),
                   xytext=(0.3, 27.0), fontsize=8.5, bbox=box, arrowprops=arrow)
    clock.annotate("max_hold_s reached: the watermark\nfollows newest - max_hold - lateness", xy=(10.5, 17.2),
                   xytext=(0.3, 22.3), fontsize=8.5, bbox=box, arrowprops=arrow)
    clock.annotate("flush at 18:10: used,\nits windows held open", xy=(14.0, FLUSH_AT_S / 60),
                   xytext=(18.5, 13.0), fontsize=8.5, bbox=box, arrowprops=arrow)
    late = [ts for modality, ts, _, outcome in result.events if outcome == "late" and modality != "logs"]
    if late:
        clock.annotate("past the bound: late\n(dead letter, reason=late)", xy=(late[0], FLUSH_AT_S / 60),
                       xytext=(0.3, 17.6), fontsize=8.5, color="#c44e52", bbox=box,
                       arrowprops={**arrow, "color": "#c44e52"})
    kept = [(ts, arrived) for modality, ts, arrived, _ in result.events if modality == "logs" and arrived - ts > 5]
    if kept:
        ts, arrived = kept[0]
        clock.annotate("log behind a closed window:\nkept for the windows to come", xy=(ts, arrived),
                       xytext=(ts + 2.0, arrived + 3.3), fontsize=8.5, bbox=box, arrowprops=arrow)


def draw(result: Run, path: Path = OUTPUT) -> None:
    """Write the timeline PNG."""
    figure = Figure(figsize=(12, 5.6), layout="constrained")
    FigureCanvasAgg(figure)
    rows, clock = figure.subplots(2, 1, sharex=True, height_ratios=[1, 2.6])
    _draw_rows(rows, result)
    _draw_clock(clock, result)
    _annotate(clock, result)
    clock.set_xlabel("event time (plant minutes)")
    clock.set_xlim(-0.3, MINUTES)
    handles = [
        Patch(color="#c6dbef", label="window closed, vibration present"),
        Patch(color="#fdd0a2", label="window closed, vibration absent"),
        Line2D([], [], marker="o", color=COLOURS["vibration"], ls="none", label="vibration snapshot"),
        Line2D([], [], marker="o", mfc="white", mec=COLOURS["vibration"], ls="none", label="vibration, flushed"),
        Line2D([], [], marker="o", color=COLOURS["camera"], ls="none", label="camera frame"),
        Line2D([], [], marker="s", color=COLOURS["logs"], ls="none", label="maintenance log"),
        Line2D([], [], marker="X", color="#c44e52", ls="none", label="late"),
        Line2D([], [], color="black", lw=2.0, label="watermark"),
        Line2D([], [], color="#999999", ls="--", label="newest event"),
        Line2D([], [], color="#c44e52", ls=":", label="newest - max_hold - lateness"),
    ]
    figure.legend(handles=handles, loc="outside right center", fontsize=8.5, frameon=False)
    figure.suptitle("One asset's event time: window 60 s, allowed lateness 30 s, modality_idle_s 600, "
                    "max_hold_s 300", fontsize=11)
    rows.set_title("what the windows got (x: event time; shaded: the windows closed, by whether vibration is in"
                   " them)", fontsize=9, loc="left", color="#555555")
    clock.set_title("when it arrived (y: processing time) and the watermark", fontsize=9, loc="left",
                    color="#555555")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    """Run the scenario and write the figure; print what the aligner counted."""
    result = run()
    draw(result)
    late = sum(1 for *_, outcome in result.events if outcome == "late")
    absent = sum(1 for window, _ in result.windows if not window.present["vibration"])
    print(f"{len(result.events)} events, {late} late; {len(result.windows)} windows closed, {absent} without "
          f"vibration; wrote {OUTPUT}")


if __name__ == "__main__":
    main()
