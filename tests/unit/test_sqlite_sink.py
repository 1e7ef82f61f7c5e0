"""The SQLite sink against real database files: round trips, deterministic keys, one transaction per flush."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectors.sinks.sqlite import ScoreSeries, SqliteSink
from fusewatch.core.errors import FusewatchError, SinkUnavailableError
from fusewatch.core.events import Alert, DeadLetter, GroundTruth, Score, make_event
from fusewatch.core.timeutil import NS_PER_MIN, parse_time

T0 = parse_time("2026-11-30T00:00:00Z")


def score(
    asset: str = "pump-1",
    minute: int = 1,
    fused: float = 0.25,
    *,
    run: str = "run-1",
    modalities: tuple[str, ...] = ("vibration", "camera", "logs"),
    warmup: bool = False,
) -> Score:
    share = fused / len(modalities)
    return make_event(
        Score, asset_id=asset, window_start=T0 + (minute - 1) * NS_PER_MIN, window_end=T0 + minute * NS_PER_MIN,
        fused=fused, calibrated={m: min(1.0, fused + 0.1) for m in modalities}, raw={m: 3.5 for m in modalities},
        contributions={m: share for m in modalities},
        present={m: m in modalities for m in ("vibration", "camera", "logs")},
        leading=modalities[0], top_features=[("vib_rms", 0.5), ("cam_edges", 0.25)], warmup=warmup,
        model_version="v1", run_id=run,
    )  # fmt: skip


def with_features(score: Score, features: Any) -> Score:
    """The score with these feature values (unvalidated: the sink must cope with numpy scalars and NaN)."""
    return score.model_copy(update={"features": features})


def alert(
    transition: str = "opened", *, asset: str = "pump-1", minute: int = 5, fused: float = 0.9, run: str = "run-1"
) -> Alert:
    return make_event(
        Alert, alert_id=f"{asset}:{run}:1", asset_id=asset, ts=T0 + minute * NS_PER_MIN, transition=transition,
        severity="critical" if transition == "escalated" else "warning", fused=fused,
        contributions={"vibration": 0.6, "logs": 0.3}, leading="vibration",
        top_features=[("vib_rms", 0.123456789012345), ("log_symptom", 1e-9)], opened_at=T0 + 5 * NS_PER_MIN,
        run_id=run,
    )  # fmt: skip


def truth(asset: str = "pump-1", fault: Any = "bearing_outer") -> GroundTruth:
    onset = T0 + 3 * NS_PER_MIN if fault else None
    return make_event(
        GroundTruth, asset_id=asset, asset_kind="pump", fault_type=fault, onset_at=onset,
        failure_at=T0 + 9 * NS_PER_MIN if fault else None, restart_at=None,
        first_modality="vibration" if fault else None,
    )  # fmt: skip


_OPENED: list[sqlite3.Connection] = []


def other_connection(path: Path) -> sqlite3.Connection:
    """A second, independent connection to the file (closed after the test)."""
    _OPENED.append(sqlite3.connect(path, isolation_level=None))
    return _OPENED[-1]


@pytest.fixture(autouse=True)
def _close_other_connections() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "fusewatch.sqlite"


def test_creates_one_wal_file_with_the_schema(db_path: Path) -> None:
    with SqliteSink(db_path):
        pass
    conn = other_connection(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert {"scores", "alerts", "dead_letters", "ground_truth", "features", "feature_values", "runs"} <= tables


def test_scores_round_trip_sorted_with_nan_for_absent_modalities(db_path: Path) -> None:
    with SqliteSink(db_path) as sink:
        sink.add_score(score(minute=3, fused=0.75, modalities=("vibration",)))
        sink.add_score(score(minute=1, fused=0.25, warmup=True))
        sink.add_score(score(minute=2, fused=0.5, modalities=("camera", "logs")))
    with SqliteSink(db_path) as sink:  # reopened: everything came from the file
        series = sink.read_scores("pump-1")
        assert sink.asset_ids() == ["pump-1"] and sink.run_ids() == ["run-1"]
    assert isinstance(series, ScoreSeries) and len(series) == 3
    assert series.window_end_ns.dtype == np.int64
    assert series.window_end_ns.tolist() == [T0 + m * NS_PER_MIN for m in (1, 2, 3)]
    np.testing.assert_allclose(series.fused, [0.25, 0.5, 0.75])
    assert series.warmup.dtype == np.bool_ and series.warmup.tolist() == [True, False, False]
    np.testing.assert_allclose(series.calibrated["vibration"], [0.35, np.nan, 0.85])
    np.testing.assert_allclose(series.calibrated["camera"], [0.35, 0.6, np.nan])
    np.testing.assert_allclose(series.contributions["vibration"], [0.25 / 3, 0.0, 0.75])
    np.testing.assert_allclose(series.contributions["logs"], [0.25 / 3, 0.25, 0.0])
    row = other_connection(db_path).execute(
        "SELECT raw_camera, present, leading, top_features, model_version, window_end_utc FROM scores_utc "
        "WHERE window_end = ?", (T0 + 3 * NS_PER_MIN,)
    ).fetchone()  # fmt: skip
    assert row == (None, 1, "vibration", '[["vib_rms",0.5],["cam_edges",0.25]]', "v1", "2026-11-30T00:03:00.000Z")


def test_a_second_write_of_the_same_score_replaces_it(db_path: Path) -> None:
    with SqliteSink(db_path) as sink:
        sink.add_score(with_features(score(fused=0.25), {"rms": 1.0}))
        sink.add_score(with_features(score(fused=0.5), {"rms": 2.0}))  # same key in the same buffer
        sink.flush()
        sink.add_score(score(fused=0.75))  # and across flushes, now without features
        assert sink.count("scores") == 1
        assert sink.count("features") == 0
        np.testing.assert_allclose(sink.read_scores("pump-1").fused, [0.75])
        sink.add_score(score(fused=0.75, run="run-2"))  # another run is another key
        assert sink.count("scores") == 2
        assert sink.run_ids() == ["run-1", "run-2"]


def test_features_are_readable_columns_and_long_rows(db_path: Path) -> None:
    with SqliteSink(db_path) as sink:
        sink.add_score(with_features(score(minute=1), {"vib.rms": 0.5, "Kurtosis": 3.0}))
        sink.add_score(score(minute=2))  # no features
        numpy_values: dict[str, Any] = {"kurtosis": np.float32(4.0), "vib.rms": np.float64("nan")}
        sink.add_score(with_features(score(minute=3), numpy_values))  # a new name; numpy scalars; NaN stored as NULL
    with SqliteSink(db_path) as sink:
        sink.add_score(with_features(score(minute=4), {"KURTOSIS": 9.0, "kurtosis": 5.0}))  # reopened: mapping reloaded
        assert sink.count("features") == 3
    conn = other_connection(db_path)
    mapping = conn.execute("SELECT name, column_name FROM feature_columns ORDER BY position").fetchall()
    assert mapping == [("vib.rms", "vib_rms"), ("Kurtosis", "Kurtosis"), ("kurtosis", "kurtosis_2"),
                       ("KURTOSIS", "KURTOSIS_3")]  # fmt: skip
    wide = conn.execute("SELECT window_end, vib_rms, Kurtosis, kurtosis_2 FROM features ORDER BY 1").fetchall()
    assert [row[1:] for row in wide] == [(0.5, 3.0, None), (None, None, 4.0), (None, None, 5.0)]
    long = conn.execute("SELECT name, value FROM feature_values WHERE window_end = ? ORDER BY name",
                        (T0 + 4 * NS_PER_MIN,)).fetchall()  # fmt: skip
    assert long == [("KURTOSIS", 9.0), ("kurtosis", 5.0)]


def test_alerts_round_trip_and_replace_by_id_and_transition(db_path: Path) -> None:
    with SqliteSink(db_path) as sink:
        written = [alert("opened"), alert("escalated", minute=6), alert("closed", minute=9, fused=0.1)]
        for item in reversed(written):
            sink.add_alert(item)
        sink.add_alert(alert("closed", minute=9, fused=0.2))  # same (alert_id, transition): replaces
        sink.add_alert(alert("opened", asset="motor-2"))
        sink.add_alert(alert("opened", run="run-2"))
        assert sink.count("alerts") == 5
        back = sink.read_alerts("pump-1", run_id="run-1")
        assert [a.transition for a in back] == ["opened", "escalated", "closed"]
        assert back[:2] == written[:2]
        assert back[2].fused == 0.2 and back[0].top_features == [("vib_rms", 0.123456789012345), ("log_symptom", 1e-9)]
        assert [a.asset_id for a in sink.read_alerts(run_id="run-1")] == ["motor-2", "pump-1", "pump-1", "pump-1"]
        assert len(sink.read_alerts()) == 5 and sink.read_alerts("nobody") == []


def test_ground_truth_and_dead_letters_round_trip(db_path: Path) -> None:
    letter = make_event(DeadLetter, source_topic="vibration", partition=2, offset=41, error="late",
                        raw_base64="RlcB", ts=T0)  # fmt: skip
    with SqliteSink(db_path) as sink:
        sink.add_ground_truth([truth("pump-1", None), truth("motor-2")])
        sink.add_ground_truth([truth("pump-1")])  # the last record of an asset wins
        sink.add_dead_letter(letter)
        sink.add_dead_letter(letter)  # the same letter twice is stored once
        sink.add_dead_letter(letter.model_copy(update={"offset": 42}))
    with SqliteSink(db_path) as sink:
        assert sink.read_ground_truth() == [truth("motor-2"), truth("pump-1")]
        assert sink.count("dead_letters") == 2
        assert sink.read_dead_letters()[0] == letter
        assert [d.offset for d in sink.read_dead_letters()] == [41, 42]


def test_flush_is_one_transaction(db_path: Path) -> None:
    sink = SqliteSink(db_path)
    reader = other_connection(db_path)
    for minute in range(1, 101):
        sink.add_score(with_features(score(minute=minute), {"rms": float(minute)}))
    sink.add_alert(alert())
    sink.add_ground_truth([truth()])
    assert reader.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0  # buffered, not written
    # make the last statement of the flush fail: nothing of it may become visible, and nothing is lost
    reader.execute("CREATE TRIGGER refuse BEFORE INSERT ON ground_truth BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        sink.flush()
    counts = "SELECT (SELECT COUNT(*) FROM scores), (SELECT COUNT(*) FROM alerts), (SELECT COUNT(*) FROM runs)"
    assert reader.execute(counts).fetchone() == (0, 0, 0)
    reader.execute("DROP TRIGGER refuse")
    sink.flush()
    assert reader.execute(counts).fetchone() == (100, 1, 1)
    assert reader.execute("SELECT COUNT(*) FROM feature_values").fetchone()[0] == 100
    sink.close()
    sink.close()  # harmless
    with pytest.raises(FusewatchError, match="closed"):
        sink.read_scores("pump-1")


def test_unknown_asset_gives_empty_arrays(db_path: Path) -> None:
    with SqliteSink(db_path) as sink:
        sink.add_score(score())
        series = sink.read_scores("nobody")
        assert len(series) == 0 and series.window_end_ns.dtype == np.int64 and series.warmup.dtype == np.bool_
        assert set(series.calibrated) == set(series.contributions) == {"vibration", "camera", "logs"}
        assert all(values.size == 0 for values in (*series.calibrated.values(), *series.contributions.values()))
        assert len(sink.read_scores("pump-1", run_id="no-such-run")) == 0


def test_read_scores_defaults_to_the_latest_run_of_the_asset(db_path: Path) -> None:
    with SqliteSink(db_path) as sink:
        sink.add_score(score(fused=0.1, run="live"))
        sink.add_score(score(fused=0.9, run="backtest"))
        sink.add_score(score(asset="motor-2", fused=0.3, run="live"))
        assert sink.read_scores("pump-1").fused.tolist() == [0.9]
        assert sink.read_scores("pump-1", run_id="live").fused.tolist() == [0.1]
        assert sink.read_scores("motor-2").fused.tolist() == [0.3]  # its latest run is "live"
        assert sink.asset_ids("backtest") == ["pump-1"] and sink.asset_ids() == ["motor-2", "pump-1"]
        assert sink.latest_run() == "backtest"


def test_refuses_unknown_tables_and_newer_schemas(db_path: Path) -> None:
    with SqliteSink(db_path) as sink, pytest.raises(ValueError, match="unknown table"):
        sink.count("sqlite_master")  # type: ignore[arg-type]
    other_connection(db_path).execute("PRAGMA user_version = 99")
    with pytest.raises(FusewatchError, match="schema version 99"):
        SqliteSink(db_path)


def test_auto_flush_bounds_the_buffer(db_path: Path) -> None:
    with SqliteSink(db_path, max_buffered=10) as sink:
        for minute in range(1, 26):
            sink.add_score(score(minute=minute))
        assert other_connection(db_path).execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 20


def test_odd_feature_values_are_coerced_not_fatal(db_path: Path) -> None:
    odd: dict[str, Any] = {"a": Decimal("1.5"), "b": np.int64(7), "c": object(), "d": True}
    with SqliteSink(db_path) as sink:
        sink.add_score(with_features(score(), odd))
    row = other_connection(db_path).execute("SELECT f_a, f_b, f_c, f_d FROM scores").fetchone()
    assert row == (1.5, 7.0, None, 1.0)


def test_discard_leaves_no_trace_of_what_was_never_written(db_path: Path) -> None:
    with SqliteSink(db_path) as sink:
        sink.add_score(with_features(score(minute=1), {"rms": 1.0}))
        sink.flush()
        sink.add_score(with_features(score(minute=2, run="run-2"), {"rms": 2.0, "crest": 3.0}))  # a new run, a new name
        sink.add(alert())
        sink.discard()
        sink.add(score(minute=3))
        assert sink.run_ids() == ["run-1"] and sink.count("scores") == 2 and sink.count("alerts") == 0
    columns = [row[1] for row in other_connection(db_path).execute("PRAGMA table_info(scores)")]
    assert "f_rms" in columns and "f_crest" not in columns


def test_a_locked_database_pushes_back_and_keeps_the_buffer(db_path: Path) -> None:
    with SqliteSink(db_path, busy_timeout_s=0.1) as sink:
        sink.add(score())
        writer = other_connection(db_path)
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(SinkUnavailableError, match="locked"):
            sink.flush()
        writer.execute("ROLLBACK")
        sink.flush()
        assert sink.count("scores") == 1
