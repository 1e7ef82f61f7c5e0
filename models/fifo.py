"""A first-in first-out queue of (integer key, float value) pairs in two flat arrays.

The models keep long per-asset histories of numbers: a calibrator's two days of learned scores, the day of
values waiting to be learned late. In a ``deque`` of tuples each pair costs about 120 bytes (a tuple, an int
and a float object, a pointer); here it costs 16 (8 for the key, 8 for the value), which at a thousand assets
is the difference between hundreds of megabytes and tens. Popping from the front advances an index; the
arrays are compacted when the popped part is at least half of them, so both operations are amortised O(1).

>>> queue = FloatFifo(keyed=True)
>>> for key, value in [(1, 0.5), (2, 0.25), (3, 0.125)]:
...     queue.append(value, key)
>>> len(queue), queue.first_key(), queue.popleft(), list(queue)
(3, 1, 0.5, [0.25, 0.125])
>>> queue.clear(); bool(queue)
False
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator


class FloatFifo:
    """FIFO of floats; with ``keyed=True`` each value carries an integer key (e.g. the window it belongs to)."""

    __slots__ = ("_head", "_keys", "_values", "keyed")

    def __init__(self, values: Iterable[float] = (), keys: Iterable[int] | None = None, keyed: bool = False) -> None:
        self.keyed = keyed or keys is not None
        self._values = array("d", values)
        self._keys = array("q", keys if keys is not None else [])
        if self.keyed and len(self._keys) != len(self._values):
            raise ValueError(f"{len(self._keys)} keys for {len(self._values)} values")
        self._head = 0

    def __len__(self) -> int:
        return len(self._values) - self._head

    def __bool__(self) -> bool:
        return len(self._values) > self._head

    def __iter__(self) -> Iterator[float]:
        return iter(self._values[self._head :])

    def append(self, value: float, key: int = 0) -> None:
        """Add ``value`` (with ``key`` when keyed) at the back."""
        self._values.append(value)
        if self.keyed:
            self._keys.append(key)

    def first_key(self) -> int:
        """The key of the value at the front (``IndexError`` when empty or not keyed)."""
        if not self or not self.keyed:
            raise IndexError("first_key of an empty or unkeyed FloatFifo")
        return self._keys[self._head]

    def popleft(self) -> float:
        """Remove and return the value at the front (``IndexError`` when empty)."""
        if not self:
            raise IndexError("popleft from an empty FloatFifo")
        value = self._values[self._head]
        self._head += 1
        if self._head * 2 >= len(self._values):
            del self._values[: self._head]
            if self.keyed:
                del self._keys[: self._head]
            self._head = 0
        return value

    def clear(self) -> None:
        """Remove everything."""
        self._values = array("d")
        self._keys = array("q")
        self._head = 0

    def __getstate__(self) -> tuple[array[float], array[int], bool]:
        return self._values[self._head :], self._keys[self._head :], self.keyed

    def __setstate__(self, state: tuple[array[float], array[int], bool]) -> None:
        self._values, self._keys, self.keyed = state
        self._head = 0

    def __repr__(self) -> str:
        return f"FloatFifo({len(self)} values)"
