"""FloatFifo (models/fifo.py) and the restore of calibrator states pickled before it."""

from __future__ import annotations

import pickle
from array import array
from collections import deque

import pytest

from models.calibration import QuantileCalibrator
from models.fifo import FloatFifo


def test_fifo_keeps_order_and_keys_across_compactions() -> None:
    queue = FloatFifo(keyed=True)
    expected: deque[tuple[int, float]] = deque()
    for step in range(1000):
        queue.append(step / 7, step)
        expected.append((step, step / 7))
        if step % 3:  # pop two of every three appended: the front moves and the arrays are compacted
            assert (queue.first_key(), queue.popleft()) == expected.popleft()
        assert len(queue) == len(expected)
    assert list(queue) == [v for _, v in expected]
    assert len(queue._values) <= 2 * len(queue) + 1  # compacted: never more than twice what it holds


def test_fifo_pickles_only_what_it_holds() -> None:
    queue = FloatFifo(keyed=True)
    for step in range(10):
        queue.append(float(step), step)
    for _ in range(4):
        queue.popleft()
    back = pickle.loads(pickle.dumps(queue))
    assert list(back) == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0] and back.first_key() == 4 and back.keyed


def test_fifo_errors() -> None:
    with pytest.raises(IndexError):
        FloatFifo().popleft()
    with pytest.raises(IndexError):
        FloatFifo([1.0]).first_key()  # not keyed
    with pytest.raises(ValueError, match="2 keys for 1 values"):
        FloatFifo([1.0], [1, 2])


def test_calibrator_restores_a_state_pickled_with_lists() -> None:
    fresh = QuantileCalibrator(window=5, min_samples=2)
    for value in (3.0, 1.0, 2.0, 5.0, 4.0, 6.0):
        fresh.learn_one(value)
    old = QuantileCalibrator.__new__(QuantileCalibrator)
    old.__setstate__({"window": 5, "min_samples": 2, "tail": 0.05, "_fifo": deque([1.0, 2.0, 5.0, 4.0, 6.0]),
                      "_sorted": [1.0, 2.0, 4.0, 5.0, 6.0]})
    assert isinstance(old._fifo, FloatFifo) and isinstance(old._sorted, array)
    for value in (0.5, 2.5, 7.0):
        assert old.score_one(value) == fresh.score_one(value)
    old.learn_one(0.0)
    fresh.learn_one(0.0)
    assert list(old._sorted) == list(fresh._sorted) == [0.0, 2.0, 4.0, 5.0, 6.0]
