"""The alignment rules, one test each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fusewatch.core.events import CameraFrame, MaintenanceLog, VibrationChunk
from fusewatch.core.timeutil import NS_PER_HOUR, NS_PER_S
from streams.aligner import AlignedWindow, Aligner, AlignerConfig

JPEG = b"\xff\xd8\xff\xe0fake"
S = NS_PER_S


def chunk(ts_s: float, asset: str = "pump-01", sensor: str = "de") -> VibrationChunk:
    return VibrationChunk(
        asset_id=asset, sensor_id=sensor, ts=int(ts_s * S), sample_rate_hz=100.0, unit="g",
        samples=np.ones(10, dtype=np.float32),
    )


def frame(ts_s: float, asset: str = "pump-01") -> tuple[CameraFrame, np.ndarray]:
    event = CameraFrame(asset_id=asset, camera_id="cam-1", ts=int(ts_s * S), width=4, height=4, encoding="jpeg",
                        data=JPEG)
    return event, np.full((4, 4), int(ts_s) % 256, dtype=np.uint8)


def log(ts_s: float, text: str = "routine check", asset: str = "pump-01") -> MaintenanceLog:
    return MaintenanceLog(asset_id=asset, ts=int(ts_s * S), text=text)


def aligner(clock: list[int] | None = None, **overrides: float) -> Aligner:
    """An aligner on a processing clock the test moves (``clock[0]``, ns); by default no modality holds (the
    rules of a single ordered stream), the holding tests set ``max_hold_s``."""
    settings = {"window_s": 60.0, "allowed_lateness_s": 10.0, "frame_tolerance_s": 90.0, "idle_timeout_s": 300.0,
                "max_hold_s": 0.0}
    settings.update(overrides)
    now = clock if clock is not None else [0]
    return Aligner(AlignerConfig(**settings), clock=lambda: now[0])


def feed(a: Aligner, events: list[Any], now: int = 0) -> list[AlignedWindow]:
    windows = []
    for item in events:
        event, pixels = item if isinstance(item, tuple) else (item, None)
        windows.extend(a.add(event, pixels, now).windows)
    return windows


def test_in_order_windows_close_when_the_watermark_passes_their_end() -> None:
    a = aligner()
    assert feed(a, [chunk(1), chunk(61)]) == []  # watermark 51 < 60
    windows = feed(a, [chunk(75)])  # watermark 65 >= 60
    assert [(w.start_ns, w.end_ns) for w in windows] == [(0, 60 * S)]
    assert [c.ts for c in windows[0].vibration] == [1 * S]
    assert windows[0].closed_by == "watermark"


def test_window_boundaries_are_half_open() -> None:
    a = aligner(allowed_lateness_s=0)
    windows = feed(a, [chunk(59.999), chunk(60), chunk(120)])
    assert [[c.ts for c in w.vibration] for w in windows] == [[int(59.999 * S)], [60 * S]]


def test_out_of_order_within_lateness_is_accepted_into_its_window() -> None:
    a = aligner()
    feed(a, [chunk(30), chunk(65)])
    assert a.add(chunk(20), None, 0).outcome == "accepted"  # 20 s is behind 65 s, but window 0 is still open
    windows = feed(a, [chunk(130)])
    assert [c.ts for c in windows[0].vibration] == [20 * S, 30 * S]  # sorted by event time
    assert a.stats.late == 0


def test_events_beyond_the_allowed_lateness_are_late_and_counted() -> None:
    a = aligner()
    feed(a, [chunk(30), chunk(75)])  # closes [0, 60)
    result = a.add(chunk(40, sensor="nde"), None, 0)
    assert result.outcome == "late" and result.windows == []
    assert a.stats.late == 1


def test_duplicates_are_dropped_and_counted() -> None:
    a = aligner()
    feed(a, [chunk(30)])
    assert a.add(chunk(30), None, 0).outcome == "duplicate"
    assert a.add(chunk(30, sensor="nde"), None, 0).outcome == "accepted"  # another sensor is not a duplicate
    windows = feed(a, [chunk(100)])
    assert len(windows[0].vibration) == 2
    assert a.stats.duplicates == 1


def test_missing_modalities_are_explicit_in_the_presence_mask() -> None:
    a = aligner()
    windows = feed(a, [chunk(10), chunk(80)])
    assert windows[0].present == {"vibration": True, "camera": False, "logs": False}
    assert windows[0].frame is None and windows[0].logs == ()


def test_frames_join_as_of_the_window_end_within_tolerance() -> None:
    a = aligner(frame_tolerance_s=90)
    windows = feed(a, [frame(30), frame(50), chunk(70), chunk(135), chunk(200), chunk(300)])
    by_start = {w.start_ns // S: w for w in windows}
    assert by_start[0].frame is not None and by_start[0].frame.event.ts == 50 * S  # the latest before the end
    assert by_start[60].frame is not None and by_start[60].frame.event.ts == 50 * S  # 70 s old: within 90 s
    assert by_start[120].frame is None  # 130 s old at 180 s: beyond tolerance
    assert by_start[120].present["camera"] is False


def test_logs_join_over_their_horizon_with_halving_weight() -> None:
    a = aligner(log_half_life_s=3600, log_horizon_s=4 * 3600)
    feed(a, [log(0, "brg noisy")])
    windows = feed(a, [chunk(3600 - 60), chunk(3700)])
    hour_window = next(w for w in windows if w.end_ns == 3600 * S)
    (entry, weight), = hour_window.logs
    assert entry.text == "brg noisy"
    assert weight == pytest.approx(0.5)
    later = feed(a, [chunk(5 * 3600), chunk(5 * 3600 + 100)])
    assert all(w.logs == () for w in later if w.end_ns > 4 * 3600 * S)  # past the horizon


def test_idle_assets_are_closed_by_the_runner_clock() -> None:
    a = aligner(idle_timeout_s=300)
    feed(a, [chunk(10)], now=10 * S)
    assert a.expire_idle(200 * S) == []
    windows = a.expire_idle(310 * S)
    assert [w.start_ns for w in windows] == [0] and windows[0].closed_by == "idle"
    assert a.stats.closed_by_idle == 1
    assert a.add(chunk(20, sensor="nde"), None, 320 * S).outcome == "late"


def test_a_dead_camera_does_not_stall_scoring() -> None:
    a = aligner()
    events = [frame(5)] + [chunk(t) for t in range(0, 600, 60)]
    windows = feed(a, events)
    assert len(windows) == 8  # every window up to the watermark (530 s) closes although frames stopped at 5 s
    assert [w.present["camera"] for w in windows[:3]] == [True, False, False]


def test_assets_are_aligned_independently() -> None:
    a = aligner()
    feed(a, [chunk(10, asset="pump-01"), chunk(10, asset="pump-02")])
    windows = feed(a, [chunk(100, asset="pump-02")])
    assert [w.asset_id for w in windows] == ["pump-02"]
    assert a.pending_windows() == 2


def test_flush_closes_everything_pending() -> None:
    a = aligner()
    feed(a, [chunk(10), chunk(65), chunk(10, asset="motor-01")])  # watermark 55: nothing closed yet
    assert sorted((w.asset_id, w.start_ns) for w in a.flush()) == [("motor-01", 0), ("pump-01", 0), ("pump-01", 60 * S)]
    assert a.pending_windows() == 0


def test_memory_is_pruned_as_windows_close() -> None:
    a = aligner(log_horizon_s=3600)
    for minute in range(600):
        event, pixels = frame(minute * 60 + 30)
        a.add(event, pixels, 0)
        a.add(chunk(minute * 60 + 1), None, 0)
    state = a._assets["pump-01"]
    assert len(state.frames) <= 4
    assert len(state.seen) <= 512
    assert len(state.pending) <= 2


def test_config_errors_name_the_setting() -> None:
    with pytest.raises(ValueError, match="window_s"):
        AlignerConfig(window_s=0)
    assert AlignerConfig().ns("window_s") == 60 * S
    assert AlignerConfig(log_horizon_s=2 * 3600).ns("log_horizon_s") == 2 * NS_PER_HOUR


# ---------------------------------------------------------------- per-modality progress, idleness, bounded hold

MIN = 60 * NS_PER_S


def test_the_watermark_is_the_slowest_modality_that_still_speaks() -> None:
    a = aligner(max_hold_s=3600, modality_idle_s=60)
    assert feed(a, [frame(30), chunk(1), chunk(61), chunk(121), chunk(181)]) == []  # the camera is at 30 s
    windows = feed(a, [frame(100)])  # camera at 100: watermark 90 closes [0, 60)
    assert [(w.start_ns // S, [c.ts // S for c in w.vibration], w.frame.event.ts // S if w.frame else None)
            for w in windows] == [(0, [1], 30)]
    windows = feed(a, [frame(150), frame(200)])  # now vibration (181) is the slowest: watermark 171
    assert [w.start_ns // S for w in windows] == [60]
    assert windows[0].frame is not None and windows[0].frame.event.ts == 100 * S
    assert a.stats.late == 0
    assert a.lag_s() == {"camera": 0.0, "vibration": 19.0}


def test_a_silent_modality_stops_holding_after_modality_idle_s_of_processing_time_and_holds_again_when_it_speaks(
) -> None:
    clock = [0]
    a = aligner(clock, max_hold_s=3600, modality_idle_s=60)
    feed(a, [frame(10), chunk(1), chunk(61), chunk(121)])
    clock[0] = 59 * S
    assert a.expire_idle(0) == []  # the camera spoke 59 s ago: it still holds
    clock[0] = 61 * S
    assert [w.start_ns // S for w in a.expire_idle(0)] == [0]  # idle: vibration alone sets the watermark (111)
    assert [w.start_ns // S for w in feed(a, [chunk(181)])] == [60]  # ... as it does on the next vibration
    assert feed(a, [frame(175)]) == []  # the camera speaks again, newer than what closed
    assert feed(a, [chunk(241), chunk(301)]) == []  # and holds: its progress is 175
    assert [w.start_ns // S for w in feed(a, [frame(300)])] == [120, 180]
    assert a.stats.late == 0


def test_maintenance_logs_never_hold_a_window_back() -> None:
    a = aligner(max_hold_s=3600)
    windows = feed(a, [log(5), chunk(1), chunk(61), chunk(80)])
    assert [w.start_ns // S for w in windows] == [0] and windows[0].present["logs"]


def test_a_lagging_modality_holds_at_most_max_hold_s_and_past_it_is_late() -> None:
    a = aligner(max_hold_s=600, modality_idle_s=3600)
    feed(a, [frame(0)] + [chunk(t) for t in range(1, 660, 60)])  # vibration at 601 s, camera at 0 s
    assert a.pending_windows() == 11  # hold: 601 - 600 - 10 < 60
    windows = feed(a, [chunk(721)])  # newest 721: held at most to 721 - 600 - 10 = 111
    assert [w.start_ns // S for w in windows] == [0]
    assert a.add(frame(30)[0], frame(30)[1], 0).outcome == "late"  # behind the closed window: past the bound
    assert a.add(frame(70)[0], frame(70)[1], 0).outcome == "accepted"  # within it: window [60, 120) is open
    assert a.stats.late == 1


def test_a_log_behind_a_closed_window_is_kept_for_the_windows_to_come() -> None:
    a = aligner(log_horizon_s=3600)
    feed(a, [chunk(1), chunk(61), chunk(121)])  # [0, 60) closed at watermark 111
    assert a.add(log(30, "replaced bearing"), None, 0).outcome == "accepted"
    assert a.stats.logs_after_close == 1 and a.stats.late == 0
    windows = feed(a, [chunk(181)])
    assert [w.start_ns // S for w in windows] == [60] and [e.text for e, _ in windows[0].logs] == ["replaced bearing"]
    feed(a, [chunk(7200)])
    assert a.add(log(100, "too old"), None, 0).outcome == "late"  # behind the horizon of every window to come


def test_a_restored_aligner_counts_every_modality_as_having_just_spoken() -> None:
    import pickle

    clock = [0]
    a = aligner(clock, max_hold_s=3600, modality_idle_s=60)
    feed(a, [frame(10), chunk(1), chunk(61), chunk(121)])
    clock[0] = 10 * NS_PER_HOUR  # long after the camera spoke; restored elsewhere, activity is unknown
    restored: Aligner = pickle.loads(pickle.dumps(a))
    assert restored.expire_idle(0) == []  # the camera holds for another modality_idle_s
    assert restored.pending_windows() == 3


def test_held_bytes_count_the_open_windows_samples_and_frames() -> None:
    a = aligner(max_hold_s=3600)
    feed(a, [frame(30), chunk(1), chunk(61)])
    assert a.held_bytes() == 2 * 10 * 4 + 4 * 4  # two chunks of 10 float32, one 4x4 uint8 frame
