"""Event time as integer nanoseconds since the Unix epoch (UTC).

Python's ``datetime`` stops at microseconds, while sensor chunks are stamped to the nanosecond,
so fusewatch carries event time as ``int`` nanoseconds and converts at the edges.

>>> ns = parse_time("2026-11-30T07:56:00.123456789Z")
>>> ns
1796025360123456789
>>> format_time(ns)
'2026-11-30T07:56:00.123456789Z'
>>> format_time(parse_time("2026-11-30T08:56:00+01:00"))
'2026-11-30T07:56:00Z'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

NS_PER_MS = 1_000_000
NS_PER_S = 1_000 * NS_PER_MS
NS_PER_MIN = 60 * NS_PER_S
NS_PER_HOUR = 60 * NS_PER_MIN
NS_PER_DAY = 24 * NS_PER_HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)


def parse_time(value: object) -> int:
    """Return nanoseconds since the epoch for an int, an aware datetime or an RFC 3339 string.

    Naive datetimes and strings without an offset are refused: event time is always UTC-anchored.
    """
    if isinstance(value, bool):
        raise ValueError("a timestamp cannot be a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must be timezone-aware (UTC)")
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000
    if isinstance(value, str):
        match = _RFC3339.match(value.strip())
        if match is None:
            raise ValueError(f"not an RFC 3339 timestamp with offset: {value!r}")
        day, clock, fraction, offset = match.groups()
        base = datetime.fromisoformat(f"{day}T{clock}{'+00:00' if offset.upper() == 'Z' else offset}")
        return parse_time(base) + int((fraction or "0").ljust(9, "0"))
    raise ValueError(f"expected nanoseconds, an aware datetime or an RFC 3339 string, got {type(value).__name__}")


def to_datetime(ns: int) -> datetime:
    """Return an aware UTC datetime (microsecond precision) for ``ns``."""
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def format_time(ns: int) -> str:
    """Format ``ns`` as RFC 3339 UTC with only as many fractional digits as needed."""
    seconds, fraction = divmod(ns, NS_PER_S)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"
