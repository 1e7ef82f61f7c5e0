"""The recovery benchmark's pure helpers: windows due, when the scores were complete, backlog, re-scored windows."""

from __future__ import annotations

import datetime

import pytest

from benchmarks.recovery import (
    JOINED,
    READY,
    ScoreRecord,
    backlog,
    complete_at,
    due_window_ends,
    logged_at,
    rescored,
    restores,
)

S = 1_000_000_000
M = 60 * S


def test_due_window_is_the_newest_closed_by_the_lateness() -> None:
    due = due_window_ends({"a": 10 * M + 29 * S, "b": 10 * M + 30 * S}, {"a": 0, "b": 0}, M, 30 * S)
    # a's watermark 9:59 closes the window ending 9:00; b's reaches 10:00 and closes the one ending there
    assert due == {"a": 9 * M, "b": 10 * M}


def test_an_asset_without_a_closed_window_is_not_due() -> None:
    assert due_window_ends({"young": 5 * M + 40 * S}, {"young": 5 * M}, M, 30 * S) == {}
    assert due_window_ends({"young": 6 * M + 30 * S}, {"young": 5 * M}, M, 30 * S) == {"young": 6 * M}


def test_complete_when_every_asset_has_its_due_window_or_a_later_one() -> None:
    records = [ScoreRecord(1_000, "a", 9 * M, "a|9"), ScoreRecord(2_000, "b", 8 * M, "b|8"),
               ScoreRecord(3_000, "b", 11 * M, "b|11"), ScoreRecord(4_000, "a", 10 * M, "a|10")]
    assert complete_at(records, {"a": 9 * M, "b": 10 * M}) == 3_000  # b's later window counts
    assert complete_at(records, {"a": 10 * M, "b": 10 * M}) == 4_000
    assert complete_at(records, {"a": 12 * M}) is None
    assert complete_at(records, {"a": 9 * M, "c": M}) is None  # c has no score at all


def test_complete_at_takes_each_assets_earliest_score_whatever_the_order() -> None:
    records = [ScoreRecord(5_000, "a", 10 * M, "a|10"), ScoreRecord(2_000, "a", 10 * M, "a|10")]
    assert complete_at(records, {"a": 10 * M}) == 2_000


def test_backlog_sums_what_is_not_committed() -> None:
    assert backlog({"v0": 100, "v1": 50, "f0": 0}, {"v0": 90, "v1": 60}) == 10
    assert backlog({"v0": 100}, {}) == 100


def test_rescored_counts_repeated_ids_only() -> None:
    assert rescored(["a|1", "b|1"], ["a|2", "b|1", "a|1", "a|2"]) == 3
    assert rescored([], ["a|1", "a|2"]) == 0


def test_logged_at_finds_the_join_and_the_restored_state_in_either_log_format() -> None:
    text = ("2026-11-30 21:05:50,000 INFO streams.runners.worker assigned partitions []\n"
            "[2026-11-30 21:05:51,500] [7] [INFO] Setting newly assigned partitions {TopicPartition(topic='v')}\n"
            "2026-11-30 21:05:53,250 INFO streams.runners.worker assigned partitions [0, 1, 2, 3, 4, 5]\n"
            "2026-11-30 21:06:00,000 INFO streams.runners.worker assigned partitions [0]\n")
    assert logged_at(text, JOINED) == datetime.datetime(2026, 11, 30, 21, 5, 51, 500000).timestamp()
    assert logged_at(text, READY) == datetime.datetime(2026, 11, 30, 21, 5, 53, 250000).timestamp()
    assert logged_at("nothing yet", READY) is None


def test_restores_reads_the_state_stores_log_lines() -> None:
    text = ("2026-12-06 12:55:01,100 INFO connectors.kafka.state_store partition 3: checkpoint of 1000 bytes restored"
            " from fwbench.worker-state in 0.75 s (4000 bytes read)\n"
            "2026-12-06 12:55:02,100 INFO streams.runners.worker progress partitions=[3]\n")
    found = restores(text)
    assert len(found) == 1 and found[0][0] == 3 and found[0][1] == 1000
    assert found[0][2] == pytest.approx(0.75) and found[0][3] == 4000
