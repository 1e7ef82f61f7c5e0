"""The ingest benchmark's pure helpers: condition order, rates from a reader's report, the reader's tally."""

from __future__ import annotations

import pytest

from benchmarks.ingest import CONDITIONS, rates, rotated
from benchmarks.ingest_worker import MODES, Tally


def test_rotation_puts_every_condition_first_once_per_cycle() -> None:
    names = list(CONDITIONS)
    firsts = [rotated(names, repetition)[0] for repetition in range(len(names))]
    assert sorted(firsts) == sorted(names)
    for repetition in range(2 * len(names)):
        assert sorted(rotated(names, repetition)) == sorted(names)
    assert rotated([], 3) == []


def test_rates_count_the_messages_after_the_first() -> None:
    # 11 messages of 1 MB: the clock starts at the first, so 10 were read in the 2 s
    per_second, mb_per_second = rates({"messages": 11, "bytes": 11_000_000, "seconds": 2.0})
    assert per_second == pytest.approx(5.0)
    assert mb_per_second == pytest.approx(5.0)


def test_rates_of_a_single_message_are_zero_not_an_error() -> None:
    assert rates({"messages": 1, "bytes": 100, "seconds": 0.0}) == (0.0, 0.0)


def test_tally_stops_at_the_count_and_times_first_to_last(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([11.0, 12.5, 14.0])
    monkeypatch.setattr("benchmarks.ingest_worker.time.perf_counter", lambda: next(clock))
    tally = Tally(count=3, started=10.0)
    assert [tally.add(100), tally.add(200), tally.add(300)] == [False, False, True]
    report = tally.report()
    assert report == {"messages": 3, "bytes": 600, "seconds": pytest.approx(3.0), "startup_s": pytest.approx(1.0)}


def test_every_condition_has_a_reader_mode() -> None:
    assert set(CONDITIONS.values()) <= set(MODES)
