"""Where an imported event's time comes from: a column value, a file-name pattern, or a start and a sample rate.

**Column values** (:class:`TimeFormat`): ``iso`` (RFC 3339 / ISO 8601; a value without an offset is read in the
time zone given), ``epoch-s``, ``epoch-ms``, ``epoch-us``, ``epoch-ns`` (numbers since 1970-01-01 UTC), or a
``strftime`` pattern such as ``%d/%m/%Y %H:%M`` (with ``%z`` an offset, else the time zone given):

>>> from fusewatch.core.timeutil import format_time
>>> format_time(TimeFormat("iso").parse("2026-01-05 06:00:00"))
'2026-01-05T06:00:00Z'
>>> format_time(TimeFormat("iso", "Europe/Berlin").parse("2026-01-05T07:00:00.25"))
'2026-01-05T06:00:00.25Z'
>>> format_time(TimeFormat("epoch-ms").parse("1767592800000"))
'2026-01-05T06:00:00Z'
>>> format_time(TimeFormat("%d/%m/%Y").parse("05/01/2026"))
'2026-01-05T00:00:00Z'

**File names** (:class:`NamePattern`): the whole file name (not its folder) matched against a pattern of
literal text, ``{asset_id}`` / ``{sensor_id}`` / ``{camera_id}`` fields, ``*`` (any text) and the ``strftime``
codes ``%Y %y %m %d %j %H %M %S %f %s %z %%`` (``%f``: 1 to 9 digits of a second, ``%s``: epoch seconds).
``{asset_id}`` takes the longest text that lets the rest of the name match, the other fields the shortest:

>>> pattern = NamePattern("{asset_id}_%Y%m%dT%H%M%S.wav")
>>> found = pattern.match("pump-01_20260105T060000.wav")
>>> found.fields, format_time(found.ts)
({'asset_id': 'pump-01'}, '2026-01-05T06:00:00Z')
>>> pattern.match("notes.txt") is None
True
>>> NamePattern("{asset_id}-{camera_id}-%Y%m%d.jpg").match("pump-02-top-20260105.jpg").fields
{'asset_id': 'pump-02', 'camera_id': 'top'}

**Durations** (:func:`parse_duration`): a number of seconds or a number with ``ms``, ``s``, ``min``, ``h``, ``d``:

>>> parse_duration("500ms"), parse_duration("1min"), parse_duration("2.5")
(0.5, 60.0, 2.5)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fusewatch.core.errors import ConfigError
from fusewatch.core.timeutil import NS_PER_S, parse_time

EPOCH_UNITS = {"epoch-s": NS_PER_S, "epoch-ms": 1_000_000, "epoch-us": 1_000, "epoch-ns": 1}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|min|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds of ``text`` (``500ms``, ``1s``, ``1min``, ``2h``, ``1d`` or a plain number of seconds), > 0."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"not a positive duration: {text!r} (e.g. 500ms, 1s, 1min, 2h)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def time_zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/Berlin``, ...) for times written without an offset."""
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone: unknown time zone {name!r} (an IANA name, e.g. UTC or Europe/Berlin)") from None


def aware_ns(moment: datetime, zone: tzinfo) -> int:
    """Nanoseconds of ``moment``, read in ``zone`` when it has no offset of its own (microsecond precision)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone)
    return parse_time(moment)


class TimeFormat:
    """How a column's text becomes event time (see the module's documentation); :meth:`parse` raises ValueError."""

    def __init__(self, spec: str = "iso", zone: str = "UTC") -> None:
        self.spec, self.zone = spec, time_zone(zone)
        if spec not in ("iso", *EPOCH_UNITS) and "%" not in spec:
            raise ConfigError(f"--time-format: {spec!r} is neither iso, epoch-s|ms|us|ns nor a strftime pattern")

    def parse(self, text: str) -> int:
        value = text.strip()
        if not value:
            raise ValueError("empty time")
        if self.spec in EPOCH_UNITS:
            try:
                number = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise ValueError(f"not a number of {self.spec.removeprefix('epoch-')} since 1970: {value!r}") from None
            return round(number * EPOCH_UNITS[self.spec])
        if self.spec == "iso":
            try:
                return parse_time(value)  # RFC 3339 with an offset, to the nanosecond
            except ValueError:
                pass
            try:
                return aware_ns(datetime.fromisoformat(value), self.zone)
            except ValueError:
                raise ValueError(f"not an ISO 8601 / RFC 3339 time: {value!r}") from None
        try:
            return aware_ns(datetime.strptime(value, self.spec), self.zone)
        except ValueError:
            raise ValueError(f"does not match the time format {self.spec!r}: {value!r}") from None


_CODES = {
    "Y": r"(?P<Y>\d{4})", "y": r"(?P<y>\d{2})", "m": r"(?P<m>\d{2})", "d": r"(?P<d>\d{2})", "j": r"(?P<j>\d{3})",
    "H": r"(?P<H>\d{2})", "M": r"(?P<M>\d{2})", "S": r"(?P<S>\d{2})", "f": r"(?P<f>\d{1,9})", "s": r"(?P<s>\d+)",
    "z": r"(?P<z>Z|[+-]\d{2}:?\d{2})",
}
FIELDS = ("asset_id", "sensor_id", "camera_id")
_FIELD_PATTERN = {"asset_id": r"[A-Za-z0-9_.:\-]+", "sensor_id": r"[^/]+?", "camera_id": r"[^/]+?"}


@dataclass(frozen=True)
class NameMatch:
    """What a file name says: its fields (asset id, ...) and its time (``None`` without date codes)."""

    fields: dict[str, str]
    ts: int | None


class NamePattern:
    """A file-name pattern (see the module's documentation); :meth:`match` reads one name."""

    def __init__(self, pattern: str, zone: str = "UTC") -> None:
        self.pattern, self.zone = pattern, time_zone(zone)
        parts, index = [], 0
        while index < len(pattern):
            char = pattern[index]
            if char == "%":
                code = pattern[index + 1: index + 2]
                if code == "%":
                    parts.append("%")
                elif code in _CODES:
                    if f"(?P<{code}>" in "".join(parts):
                        raise ConfigError(f"--time-pattern {pattern!r}: %{code} appears twice")
                    parts.append(_CODES[code])
                else:
                    raise ConfigError(f"--time-pattern {pattern!r}: unsupported code %{code} (use %Y %y %m %d %j %H"
                                      " %M %S %f %s %z %%)")
                index += 2
            elif char == "{":
                end = pattern.find("}", index)
                name = pattern[index + 1: end] if end > 0 else ""
                if name not in FIELDS:
                    raise ConfigError(f"--time-pattern {pattern!r}: unknown field {{{name}}} (use {{asset_id}},"
                                      " {sensor_id} or {camera_id})")
                parts.append(f"(?P<{name}>{_FIELD_PATTERN[name]})")
                index = end + 1
            elif char == "*":
                parts.append(".*?")
                index += 1
            else:
                parts.append(re.escape(char))
                index += 1
        try:
            self.regex = re.compile("".join(parts))
        except re.error as exc:
            raise ConfigError(f"--time-pattern {pattern!r}: {exc}") from None
        self.has_time = any(f"(?P<{code}>" in self.regex.pattern for code in "Yys")
        self.fields = tuple(name for name in FIELDS if f"(?P<{name}>" in self.regex.pattern)

    def match(self, name: str) -> NameMatch | None:
        """The fields and time of ``name``, or ``None`` when it does not match; ValueError for an impossible date."""
        found = self.regex.fullmatch(name)
        if found is None:
            return None
        groups = found.groupdict()
        fields = {key: groups[key] for key in self.fields}
        return NameMatch(fields, self._time(groups) if self.has_time else None)

    def _time(self, groups: dict[str, str | None]) -> int:
        fraction = int((groups.get("f") or "0").ljust(9, "0"))
        if groups.get("s") is not None:
            return int(groups["s"] or 0) * NS_PER_S + fraction
        year = int(groups.get("Y") or 0) or 2000 + int(groups.get("y") or 0)
        moment = datetime(year, int(groups.get("m") or 1), int(groups.get("d") or 1), int(groups.get("H") or 0),
                          int(groups.get("M") or 0), int(groups.get("S") or 0))
        if groups.get("j"):
            moment = datetime.strptime(f"{year} {groups['j']} {moment:%H%M%S}", "%Y %j %H%M%S")
        zone = self.zone
        if groups.get("z"):
            text = str(groups["z"])
            zone = UTC if text == "Z" else datetime.strptime(text.replace(":", ""), "%z").tzinfo or UTC
        return aware_ns(moment, zone) + fraction
