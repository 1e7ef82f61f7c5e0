"""CMMS work-order exports (CSV) as :class:`~fusewatch.core.events.MaintenanceLog` entries.

A column mapping names the export's columns: ``asset``, ``time`` and ``text`` are required, ``kind`` and
``author`` optional (:func:`parse_mapping`). A value of the kind column is looked up, case-insensitively, in
:data:`KIND_TABLE` and then in the extra table given (``--kind-map``); a kind found in neither becomes no kind
(fusewatch infers it from the text later) or, with ``unknown_kind="error"``, a problem of that row:

>>> parse_mapping("asset=Machine,time=Date,text=Description,kind=Type")
{'asset': 'Machine', 'time': 'Date', 'text': 'Description', 'kind': 'Type'}
>>> kind_of("Breakdown", {}), kind_of("PM02", {"pm02": "repair"}), kind_of("Lubrication", {})
('failure', 'repair', None)
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from connectors.ingest.files.problems import ProblemReport
from connectors.ingest.files.timing import TimeFormat
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.events import MAX_ID_LENGTH, LogKind, MaintenanceLog, make_event

REQUIRED = ("asset", "time", "text")
OPTIONAL = ("kind", "author")
LOG_KINDS: tuple[LogKind, ...] = ("inspection", "symptom", "repair", "failure", "note")
KIND_TABLE: dict[str, LogKind] = {
    **{kind: kind for kind in LOG_KINDS},
    "breakdown": "failure", "failed": "failure", "fault": "failure", "emergency": "failure", "trip": "failure",
    "corrective": "repair", "corrective maintenance": "repair", "cm": "repair", "fix": "repair",
    "replacement": "repair", "replace": "repair", "overhaul": "repair",
    "inspect": "inspection", "check": "inspection", "condition monitoring": "inspection", "survey": "inspection",
    "observation": "symptom", "defect": "symptom", "alarm": "symptom", "abnormal": "symptom",
    "preventive": "note", "preventive maintenance": "note", "pm": "note",
    "comment": "note", "info": "note",
}
"""CMMS kind words → fusewatch log kinds (keys lower case); docs/import.md shows the table."""


def parse_mapping(text: str) -> dict[str, str]:
    """``field=Column,...`` → ``{field: column}``; asset, time and text are required (asset may come from --asset)."""
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, column = item.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not column:
            raise ConfigError(f"--map: {item!r} is not field=Column (e.g. asset=Machine,time=Date,text=Description)")
        if name not in REQUIRED + OPTIONAL:
            raise ConfigError(f"--map: unknown field {name!r} (fields: {', '.join(REQUIRED + OPTIONAL)})")
        mapping[name] = column
    return mapping


def parse_kind_map(text: str) -> dict[str, LogKind | None]:
    """``Value=kind,...`` (kind one of fusewatch's log kinds, or ``none``) → the extra kind table."""
    table: dict[str, LogKind | None] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        value, sep, kind = item.rpartition("=")
        kind = kind.strip().lower()
        if not sep or (kind not in LOG_KINDS and kind != "none"):
            raise ConfigError(f"--kind-map: {item!r} is not Value=kind with kind one of {', '.join(LOG_KINDS)} or"
                              " none")
        table[value.strip().lower()] = None if kind == "none" else cast(LogKind, kind)
    return table


def kind_of(value: str, extra: Mapping[str, LogKind | None]) -> LogKind | None:
    """The log kind of a CMMS kind value: the extra table first, then :data:`KIND_TABLE`; ``None`` when it is in
    neither (or mapped to none): no kind, inferred from the text later."""
    key = value.strip().lower()
    if key in extra:
        return extra[key]
    if key in KIND_TABLE:
        return KIND_TABLE[key]
    return None


def known_kind(value: str, extra: Mapping[str, LogKind | None]) -> bool:
    """Whether a kind value is empty or in one of the two tables."""
    key = value.strip().lower()
    return not key or key in extra or key in KIND_TABLE


@dataclass(frozen=True)
class LogOptions:
    """How a CMMS export is read (``fusewatch import logs``'s options)."""

    mapping: dict[str, str]
    asset_id: str | None = None
    asset_prefix: str = ""
    time_format: TimeFormat = field(default_factory=TimeFormat)
    kind_map: dict[str, LogKind | None] = field(default_factory=dict)
    unknown_kind: Literal["none", "error"] = "none"
    delimiter: str = ","
    encoding: str = "utf-8-sig"


class LogReader:
    """Reads CMMS CSV exports into log entries, row by row; a bad row is reported and skipped."""

    def __init__(self, options: LogOptions, report: ProblemReport,
                 progress: Callable[[int], object] | None = None) -> None:
        self.options, self.report = options, report
        self.progress = progress or (lambda n: None)
        missing = [name for name in REQUIRED if name not in options.mapping and not
                   (name == "asset" and options.asset_id is not None)]
        if missing:
            raise ConfigError(f"--map: {', '.join(missing)} missing (e.g. --map asset=Machine,time=Date,"
                              "text=Description; or --asset ID for a single asset)")

    def read(self, paths: list[Path]) -> Iterator[MaintenanceLog]:
        for path in paths:
            try:
                with open(path, encoding=self.options.encoding, newline="") as handle:
                    yield from self._rows(path, handle)
            except OSError as exc:
                self.report.add(path, None, None, f"cannot be read: {exc.strerror or exc}")
            except UnicodeDecodeError as exc:
                self.report.add(path, None, None, f"not {self.options.encoding} text ({exc.reason}); give --encoding")

    def _rows(self, path: Path, handle: Iterator[str]) -> Iterator[MaintenanceLog]:
        options = self.options
        reader = csv.reader(handle, delimiter=options.delimiter)
        header = [cell.strip() for cell in next(reader, [])]
        positions: dict[str, int] = {}
        for name, column in options.mapping.items():
            if column not in header:
                self.report.add(path, 1, None, f"--map {name}={column}: no column {column!r} in the header"
                                f" ({', '.join(header) or 'empty file'})")
                return
            positions[name] = header.index(column)
        read_bytes = 0
        for row in reader:
            line = reader.line_num
            read_bytes += sum(len(cell) + 1 for cell in row)
            if read_bytes > 1 << 20:
                self.progress(read_bytes)
                read_bytes = 0
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                self.report.add(path, line, None, f"{len(row)} fields, the header has {len(header)} (an unquoted"
                                " delimiter in a text?)")
                continue
            entry = self._entry(path, line, row, positions, header)
            if entry is not None:
                yield entry
        self.progress(read_bytes)

    def _entry(self, path: Path, line: int, row: list[str], positions: dict[str, int],
               header: list[str]) -> MaintenanceLog | None:
        options = self.options

        def bad(name: str, reason: str) -> None:
            position = positions[name]
            self.report.add(path, line, position + 1, f"column {header[position]!r} ({name}): {reason}")

        asset = row[positions["asset"]].strip() if "asset" in positions else options.asset_id or ""
        if not asset:
            bad("asset", "empty")
            return None
        try:
            ts = options.time_format.parse(row[positions["time"]])
        except ValueError as exc:
            bad("time", str(exc))
            return None
        kind: LogKind | None = None
        if "kind" in positions:
            value = row[positions["kind"]]
            if not known_kind(value, options.kind_map) and options.unknown_kind == "error":
                bad("kind", f"unknown kind {value.strip()!r}: map it with --kind-map {value.strip()}=<kind>")
                return None
            kind = kind_of(value, options.kind_map)
        author = row[positions["author"]].strip() or None if "author" in positions else None
        if author is not None and len(author) > MAX_ID_LENGTH:
            bad("author", f"longer than {MAX_ID_LENGTH} characters")
            return None
        text = row[positions["text"]].strip()
        if not text:
            bad("text", "empty")
            return None
        fields = {"asset_id": options.asset_prefix + asset, "ts": ts, "text": text,
                  "kind": kind, "author": author}
        try:
            return make_event(MaintenanceLog, **fields)
        except InvalidEventError as exc:
            name = {"asset_id": "asset", "ts": "time"}.get(exc.field, exc.field)
            if name in positions:
                bad(name, exc.reason)
            else:
                self.report.add(path, line, None, str(exc))
            return None
