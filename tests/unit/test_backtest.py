"""`fusewatch backtest`: recorded history scored as a worker would, labelled, measured, stored and compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.backtest.report import compare_rows, run_report_html, summary_plot
from fusewatch.backtest.run import CONFIGURED, BacktestRun, TracePoint, run_backtest, summarize
from fusewatch.backtest.store import REQUIRED_FILES, load_run, write_run
from fusewatch.cli import main
from fusewatch.config import FusewatchConfig
from fusewatch.core.codec import encode
from fusewatch.core.errors import ConfigError
from fusewatch.core.events import GroundTruth, MaintenanceLog
from fusewatch.core.history import RecordedMessage, TopicKind
from fusewatch.core.timeutil import NS_PER_HOUR, format_time
from fusewatch.core.topics import Topics
from fusewatch.evaluation.labels import LabelledEvent, Labels, LogLabels, read_labels_csv
from fusewatch.evaluation.methods import WindowRecord, method_row
from fusewatch.evaluation.outcomes import alert_outcomes, summarize_run
from fusewatch.scenarios.scoring import compare_methods
from fusewatch.scenarios.summary import ScenarioSummary
from streams.alerts import AlertPolicyConfig
from streams.model_config import ModelConfig
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner

TOPICS = Topics()
H = NS_PER_HOUR
MODELS = ModelConfig(warmup_windows=60, calibration_min_samples=10, learn_delay=0)
SENSITIVE = FusewatchConfig(models=MODELS, alerts=AlertPolicyConfig(
    open_threshold=0.05, close_threshold=0.02, close_windows=5, cooldown_s=60))
LESS_SENSITIVE = FusewatchConfig(models=MODELS, alerts=AlertPolicyConfig(
    open_threshold=0.3, close_threshold=0.02, close_windows=5, cooldown_s=60))
BAD_AT = 1000  # a malformed vibration message is recorded after this many messages


KINDS: dict[str, TopicKind] = {TOPICS.vibration: "vibration", TOPICS.frames: "frames",
                               TOPICS.maintenance_logs: "maintenance-logs"}


@pytest.fixture(scope="module")
def plant() -> PlantSimulator:
    """Two assets over 1.1 days, each with a fault that fails within the run (small signals: quick to score)."""
    return PlantSimulator(SimulatorConfig(
        assets=2, days=1.1, seed=2, fault_free_days=0.1, min_fault_days=0.2, max_fault_days=0.4,
        min_downtime_hours=1.0, max_downtime_hours=2.0, sample_rate_hz=4_000.0, frame_size=64,
        snapshot_seconds=0.5))


@pytest.fixture(scope="module")
def history(plant: PlantSimulator) -> list[RecordedMessage]:
    messages: list[RecordedMessage] = []
    for index, event in enumerate(e for step in plant.steps() for e in step):
        messages.append(RecordedMessage(KINDS[TOPICS.for_event(event)], 0, len(messages), event.ts // 1_000_000,
                                        event.asset_id.encode(), encode(event)))
        if index == BAD_AT:
            messages.append(RecordedMessage("vibration", 0, len(messages), event.ts // 1_000_000, b"pump-01",
                                            b"\x00 not a message"))
    return messages


@pytest.fixture(scope="module")
def reference(plant: PlantSimulator, history: list[RecordedMessage]) -> CollectingOutput:
    """The same bytes through the embedded runner as the demo's workers feed it."""
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(SENSITIVE.streams, output, run_id="bt-a",
                                            assets=plant.asset_registry()))
    for message in history:
        runner.publish(f"{TOPICS.prefix}{message.kind}", message.key or b"", message.value,
                       message.timestamp_ms * 1_000_000)
        runner.pump()
    runner.finish()
    return output


@pytest.fixture(scope="module")
def run_a(plant: PlantSimulator, history: list[RecordedMessage]) -> BacktestRun:
    return run_backtest(history, SENSITIVE, "bt-a", registry=plant.asset_registry(), progress=False)


@pytest.fixture(scope="module")
def stored_dirs(tmp_path_factory: pytest.TempPathFactory, plant: PlantSimulator, history: list[RecordedMessage],
                run_a: BacktestRun) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("backtests")
    run_b = run_backtest(history, LESS_SENSITIVE, "bt-b", registry=plant.asset_registry(), progress=False)
    for run, name in ((run_a, "a"), (run_b, "b")):
        write_run(run, summarize(run), root / name, run_report_html, summary_plot)
    return root / "a", root / "b"


def test_scores_and_alerts_are_the_embedded_runners_under_the_run_id(run_a: BacktestRun,
                                                                      reference: CollectingOutput) -> None:
    expected = [(s.score.asset_id, s.score.window_end, s.score.fused) for s in reference.scored]
    assert [(p.asset_id, p.window_end, p.fused) for p in run_a.windows] == expected
    assert [(a.alert_id, a.transition, a.ts) for a in run_a.alerts] == \
           [(a.alert_id, a.transition, a.ts) for a in reference.alerts]
    assert run_a.alerts, "the sensitive policy should open alerts"
    assert {p.run_id for p in run_a.windows} == {a.run_id for a in run_a.alerts} == {"bt-a"}
    assert len(run_a.records) == len(run_a.windows)


def test_a_malformed_message_becomes_a_counted_dead_letter(run_a: BacktestRun,
                                                           history: list[RecordedMessage]) -> None:
    [letter] = run_a.dead_letters
    assert (letter.source_topic, letter.partition, letter.offset) == (TOPICS.vibration, 0, BAD_AT + 1)
    assert letter.error.startswith("invalid")
    details = summarize(run_a).summary["details"]
    assert details["dead_letters"] == {"count": 1, "by_reason": {"invalid": 1}}
    assert details["messages"] == len(history) and details["windows"] == len(run_a.windows)


def _opened(run: BacktestRun, asset_id: str) -> list[int]:
    return sorted(a.ts for a in run.alerts if a.asset_id == asset_id and a.transition == "opened")


def test_failure_log_entries_label_the_horizon_before_them(run_a: BacktestRun, plant: PlantSimulator) -> None:
    horizon = int(MODELS.label_horizon_hours * H)
    truths = {t.asset_id: t for t in plant.ground_truth}
    events = {e.asset_id: e for e in run_a.events}
    assert set(events) == set(truths)  # one failure entry per faulty asset
    details = summarize(run_a).summary["details"]
    for asset_id, truth in truths.items():
        assert truth.failure_at is not None
        event = events[asset_id]
        assert (event.failure, event.start, event.start_known) == (truth.failure_at, truth.failure_at - horizon,
                                                                   False)
        assert event.restart == truth.restart_at  # the repair entry
        inside = [ts for ts in _opened(run_a, asset_id) if event.start <= ts <= truth.failure_at]
        [outcome] = [e for e in details["events"] if e["asset_id"] == asset_id]
        assert outcome["detected"] == bool(inside)
        assert outcome["lead_time_hours"] == (round((truth.failure_at - inside[0]) / H, 3) if inside else None)
        [asset] = [a for a in details["assets"] if a["asset_id"] == asset_id]
        assert asset["false_alarms"] == len(_opened(run_a, asset_id)) - len(inside)
        assert asset["alerts_opened"] == len(_opened(run_a, asset_id))


def test_labels_file_gives_evaluates_lead_times_and_false_alarms(run_a: BacktestRun, plant: PlantSimulator,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    lines = ["asset_id,fault_start,failure"] + [f"{t.asset_id},{format_time(t.onset_at or 0)},"
                                                f"{format_time(t.failure_at or 0)}" for t in plant.ground_truth]
    path.write_text("\n".join(lines) + "\n")
    run_a.label_with(read_labels_csv(path, int(MODELS.label_horizon_hours * H)))
    try:
        details = summarize(run_a).summary["details"]
    finally:
        run_a.label_with(None)
    assert details["labels"] == "labels file"
    expected = {row["asset_id"]: row for row in summarize_run(plant.ground_truth, run_a.alerts)}
    assert any(row["first_alert_at"] for row in expected.values()), "some fault should be detected"
    for event in details["events"]:
        row = expected[event["asset_id"]]
        assert (event["first_alert_at"], event["lead_time_hours"]) == (row["first_alert_at"], row["lead_time_hours"])
        assert event["fault_start_known"] and event["source"].startswith("labels.csv:")
    for asset in details["assets"]:
        assert asset["false_alarms"] == expected[asset["asset_id"]]["false_alarms"]


def test_metrics_of_a_hand_checked_case() -> None:
    """pump: failure logged at 100 h (start 52 h by the horizon), repaired at 104 h; motor: a fault from 10 h,
    still ongoing at the end. Alerts: pump 40 h (false), 60 h (detects, 40 h lead), 90 h (inside), 110 h (false);
    motor 5 h (false), 20 h (detects; no lead time: no failure yet)."""
    labels = Labels([LabelledEvent("pump", 52 * H, 100 * H, False, "log", restart=104 * H),
                     LabelledEvent("motor", 10 * H, None, True, "labels.csv:2")])
    opened = {"pump": [40 * H, 60 * H, 90 * H, 110 * H], "motor": [5 * H, 20 * H]}
    outcomes, false_alarms = alert_outcomes(labels, opened)
    assert [(o.event.asset_id, o.first_alert, o.lead_time_hours) for o in outcomes] == \
           [("motor", 20 * H, None), ("pump", 60 * H, 40.0)]
    assert false_alarms == {"pump": 2, "motor": 1}
    assert [labels.window_label("pump", t * H) for t in (51, 52, 100, 102, 104, 105)] == \
           [False, True, True, None, None, False]
    # pump windows every hour 0..119 h scoring 0.9 inside the event and 0.1 outside; motor all 0.5, 0..23 h
    scores = {"pump": [(t * H, 0.9 if 52 <= t <= 100 else 0.1) for t in range(120)],
              "motor": [(t * H, float("nan") if t < 2 else 0.5) for t in range(24)]}
    row = method_row("m", scores, opened, labels)
    assert row["faults"] == 2 and row["faults_detected"] == 2
    assert row["lead_time_hours_median"] == 40.0  # the ongoing fault has no lead time
    assert row["false_alarms"] == 3
    assert row["false_alarms_per_asset_day"] == pytest.approx(3 / ((119 + 21) / 24))
    assert row["windows"] == 120 - 4 + 22  # pump's down windows (101..104 h) and motor's warm-up left out
    assert 0.5 < row["roc_auc"] < 1.0  # motor's positives (0.5) rank below pump's (0.9)
    missed = method_row("m", scores, {"pump": [40 * H]}, labels)
    assert missed["faults_detected"] == 0 and missed["lead_time_hours_median"] == 0.0  # a miss counts 0 h


def test_action_entries_are_never_labels() -> None:
    logs = LogLabels()
    actions: tuple[tuple[int, Literal["acknowledge"] | None], ...] = ((1 * H, "acknowledge"), (2 * H, None))
    for ts, action in actions:
        entry = MaintenanceLog(asset_id="pump-01", ts=ts, text="pump failed, seized, tripped", kind="failure",
                               action=action)
        logs.add(RecordedMessage("maintenance-logs", 0, ts // H, ts // 1_000_000, b"pump-01", encode(entry)))
    logs.add(RecordedMessage("maintenance-logs", 0, 3, 3, b"pump-01", b"\x00 garbage"))
    assert logs.failures == {"pump-01": [2 * H]}
    assert [(e.start, e.failure) for e in logs.events(10 * H)] == [(-8 * H, 2 * H)]


@pytest.mark.parametrize(("text", "message"), [
    ("asset,start,failure\n", r"line 1: expected the header asset_id,fault_start,failure"),
    ("asset_id,fault_start,failure\npump-01,2026-01-05T00:00:00Z,\npump-02,2026-01-05,2026-01-06T00:00:00Z\n",
     r"labels\.csv: line 3, column 2 \(fault_start\): not an RFC 3339 timestamp"),
    ("asset_id,fault_start,failure\npump-01,,yesterday\n", r"line 2, column 3 \(failure\)"),
    ("asset_id,fault_start,failure\npump-01,2026-01-05T00:00:00Z\n", r"line 2: expected 3 columns, found 2"),
    ("asset_id,fault_start,failure\n\n,2026-01-05T00:00:00Z,\n", r"line 3, column 1 \(asset_id\): empty"),
    ("asset_id,fault_start,failure\npump-01,2026-01-06T00:00:00Z,2026-01-05T00:00:00Z\n",
     r"line 2, column 3 \(failure\): before fault_start"),
])
def test_labels_file_errors_name_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_labels_csv(path, 48 * H)


def test_labels_file_fault_start_may_be_unknown_and_failure_ongoing(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("asset_id,fault_start,failure\npump-01,,2026-01-05T12:00:00Z\nmotor-02,2026-01-05T00:00:00Z,\n")
    pump, motor = read_labels_csv(path, 10 * H)
    assert (pump.failure - pump.start, pump.start_known) == (10 * H, False)  # type: ignore[operator]
    assert (motor.failure, motor.start_known, motor.source) == (None, True, "labels.csv:3")


def _synthetic_records() -> tuple[list[WindowRecord], list[TracePoint], list[LabelledEvent], list[GroundTruth]]:
    """As tests/unit/test_method_comparison.py: ``sick`` degrades from 24 h to its failure at 48 h."""
    rng = np.random.default_rng(0)
    records, points = [], []
    onset, failure, minute = 24 * H, 48 * H, 60 * 10**9
    for asset in ("sick", "well"):
        for k in range(60 * 60):
            end = (k + 1) * minute
            x = {m: float(rng.uniform(0.0, 0.99)) for m in ("vibration", "camera", "logs", "early")}
            if asset == "sick" and onset + 4 * H <= end <= failure:
                x["vibration"] = x["camera"] = 1.0 - 10 ** -3.5
            if asset == "sick" and failure < end < failure + 6 * H:
                continue
            logs = ((end, "failure"),) if asset == "sick" and end == failure else ()
            records.append(WindowRecord(asset, end, k < 60, x, {"vibration": 1.0}, logs))
            points.append(TracePoint(asset, end, x["vibration"], None, k < 60, "synthetic"))
    truths = [GroundTruth(asset_id="sick", asset_kind="pump", fault_type="leak", onset_at=onset, failure_at=failure,
                          restart_at=failure + 6 * H, first_modality="vibration"),
              GroundTruth(asset_id="well", asset_kind="pump", fault_type=None, onset_at=None, failure_at=None,
                          restart_at=None, first_modality=None)]
    events = [LabelledEvent("sick", onset, failure, True, "t", restart=failure + 6 * H)]
    return records, points, events, truths


def test_summary_has_evaluates_layout_and_values() -> None:
    records, points, events, truths = _synthetic_records()
    evaluated = ScenarioSummary("synthetic", 0)
    compare_methods(evaluated, records, truths, FusewatchConfig())
    run = BacktestRun("synthetic", FusewatchConfig(), "test", windows=points, records=records, events=events)
    summary = summarize(run).summary
    assert set(summary) == set(evaluated.as_dict()) and summary["scenario"] == "backtest" and summary["seed"] is None
    theirs = {row["method"]: row for row in evaluated.rows}
    assert [row["method"] for row in summary["rows"]] == [CONFIGURED, *theirs]
    for row in summary["rows"]:
        assert list(row) == list(evaluated.rows[0])
        if row["method"] != CONFIGURED:
            assert row == theirs[row["method"]]  # the same numbers as evaluate, method by method
    assert summary["details"]["lead_times_hours"]["fisher"] == {
        "sick@" + format_time(48 * H): evaluated.details["lead_times_hours"]["fisher"]["sick"]}
    json.dumps(summary)


def test_report_dir_is_complete_and_compare_shows_the_differences(stored_dirs: tuple[Path, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    first, second = stored_dirs
    for directory in stored_dirs:
        assert sorted(p.name for p in directory.iterdir()) == sorted([*REQUIRED_FILES, "methods_summary.png"])
    a, b = load_run(first), load_run(second)
    assert (a.run_id, b.run_id) == ("bt-a", "bt-b")
    assert "[alerts]\n" in a.meta["config_toml"] and a.meta["time_range"]["first_message"] == "2026-01-05T00:00:00Z"
    assert a.windows["window_end"].size == a.summary["details"]["windows"]
    assert set(a.windows) >= {"asset_id", "window_end", "warmup", "leading", CONFIGURED, "fisher", "hybrid"}
    assert "data:image/png;base64," in (first / "report.html").read_text()
    alerts_a = a.summary["details"]["alerts_opened"][CONFIGURED]
    alerts_b = b.summary["details"]["alerts_opened"][CONFIGURED]
    assert alerts_a > alerts_b  # a higher open threshold opens fewer alerts
    [row] = [r for r in compare_rows(a, b) if r["method"] == CONFIGURED]
    assert (row["alerts A"], row["alerts B"], row["alerts B-A"]) == (alerts_a, alerts_b, alerts_b - alerts_a)

    assert main(["backtest", "compare", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert "A = bt-a   B = bt-b" in out and "alerts opened" in out
    [line] = [line for line in out.splitlines() if line.startswith(CONFIGURED)]
    assert line.split()[-3:] == [str(alerts_a), str(alerts_b), f"{alerts_b - alerts_a:+d}"]
    assert (second / "compare-bt-a" / "compare.html").is_file()
    assert (second / "compare-bt-a" / "compare_summary.png").is_file()

    (second / "alerts.json").unlink()
    assert main(["backtest", "compare", str(first), str(second)]) == 2
    assert "incomplete backtest run: alerts.json is missing" in capsys.readouterr().err
    (first / "run.json").unlink()
    assert main(["backtest", "compare", str(first), str(second), "--out", str(first / "x")]) == 2
    assert "run.json is missing" in capsys.readouterr().err


def record_first_hours(history: list[RecordedMessage], hours: float, path: Path) -> None:
    """A recording directory of the history's first ``hours``, as `fusewatch record` writes one."""
    from connectors.sources.recording import RecordingWriter

    early = [m for m in history if m.timestamp_ms < history[0].timestamp_ms + hours * 3_600_000]
    ranges = {(kind, 0): (min(m.offset for m in early if m.kind == kind),
                          max(m.offset for m in early if m.kind == kind) + 1) for kind in {m.kind for m in early}}
    writer = RecordingWriter(path, {"test": True}, None, None, ranges)
    for message in early:
        writer.add(message)
    writer.finish()


def test_cli_backtests_a_recording(plant: PlantSimulator, history: list[RecordedMessage], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    record_first_hours(history, 3, tmp_path / "rec")
    plant.asset_registry().save(tmp_path / "assets.json")
    config = tmp_path / "candidate.toml"
    config.write_text("[models]\nwarmup_windows = 60\ncalibration_min_samples = 10\nlearn_delay = 0\n")
    report = tmp_path / "report"
    status = main(["backtest", "--source", str(tmp_path / "rec"), "--from", "2026-01-05T00:00:00Z", "--to",
                   "2026-01-05T02:00:00Z", "--config", str(config), "--report", str(report), "--run-id", "cli",
                   "--assets-file", str(tmp_path / "assets.json"), "--summary-json", str(tmp_path / "s.json"),
                   "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert f"report:  {report / 'report.html'}" in out and "run cli:" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary == json.loads((report / "summary.json").read_text())
    assert summary["details"]["time_range"]["last_message"] < "2026-01-05T02:00:00Z"
    assert summary["details"]["windows"] == 2 * 120
    assert load_run(report).run_id == "cli"
    assert main(["backtest", "--source", str(tmp_path / "rec"), "--from", "2026-01-05T02:00:00Z", "--to",
                 "2026-01-05T01:00:00Z", "--report", str(report), "--no-progress"]) == 2
    assert "--to must be after --from" in capsys.readouterr().err


def test_compare_bundle_backtests_the_history_per_asset_only_and_with_the_bundle(
        plant: PlantSimulator, history: list[RecordedMessage], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Three hours of two new machines, scored twice: per-asset models cannot alert in them (two days of warm-up),
    with a bundle of kind priors (a 2-hour warm-up) they can from 1.98 h after their first window closed; both runs
    are complete report directories and the console shows them side by side as `backtest compare` does."""
    from models.bundle import write_bundle
    from models.priors import fit_priors
    from tests.unit.test_priors import synthetic_histories

    record_first_hours(history, 3, tmp_path / "rec")
    plant.asset_registry().save(tmp_path / "assets.json")
    priors = fit_priors(synthetic_histories(np.random.default_rng(1)), 2.0, (2.0, 8.0, 24.0), span_hours=48.0)
    write_bundle(tmp_path / "bundle", "p7", priors.parts())
    report = tmp_path / "report"
    command = ["backtest", "--source", str(tmp_path / "rec"), "--report", str(report), "--run-id", "nb",
               "--assets-file", str(tmp_path / "assets.json"), "--no-progress"]
    assert main([*command, "--compare-bundle", str(tmp_path / "bundle")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("A = per-asset models only, B = with bundle p7\nA = nb-per-asset   B = nb-bundle\n")
    assert "first possible alert after an asset's first message (hours, median over assets): None | 1.98" in out
    assert f"compare report: {report / 'compare.html'}" in out
    runs = {label: load_run(report / label) for label in ("per-asset", "bundle")}
    assert {label: run.run_id for label, run in runs.items()} == {"per-asset": "nb-per-asset", "bundle": "nb-bundle"}
    details = {label: run.summary["details"] for label, run in runs.items()}
    assert details["per-asset"]["windows"] == details["bundle"]["windows"] == 2 * 180
    assert details["bundle"]["first_alertable_hours"] == 1.98 and details["per-asset"]["first_alertable_hours"] is None
    assert main([*command, "--compare-bundle", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err and not (report / "per-asset" / "x").exists()
