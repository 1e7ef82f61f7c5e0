"""Failure-event labels: the CSV ``asset_id,fault_start,failure`` that ``fusewatch backtest --labels`` reads.

Importing labels checks every row (a bad one is reported with its line and column, the others are kept) and then:

- into a recording: writes them, merged with the labels already there, to ``labels.csv`` beside the recording's
  parts, for ``fusewatch backtest --source DIR --labels DIR/labels.csv`` (the known fault start is kept);
- into Kafka, or a recording with ``as_logs``: one maintenance-log entry of kind ``failure`` at each failure time,
  the entries the pipeline's labeler and the default labels of ``fusewatch backtest`` read (there the fault
  start is not kept: it becomes ``[models] label_horizon_hours`` before the failure).

>>> row = LabelRow("pump-01", None, 3_600_000_000_000, "labels.csv:2")
>>> row.csv_line()
'pump-01,,1970-01-01T01:00:00Z'
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.ingest.files.problems import ProblemReport
from connectors.ingest.files.timing import TimeFormat
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import MaintenanceLog, make_event
from fusewatch.core.timeutil import format_time

HEADER = ("asset_id", "fault_start", "failure")
FILE_NAME = "labels.csv"


@dataclass(frozen=True)
class LabelRow:
    """One labelled fault: asset, fault start and failure (either may be unknown, not both), where it was read."""

    asset_id: str
    fault_start: int | None
    failure: int | None
    source: str

    def csv_line(self) -> str:
        cells = [self.asset_id, *("" if ts is None else format_time(ts) for ts in (self.fault_start, self.failure))]
        return ",".join(cells)

    def failure_log(self) -> MaintenanceLog | None:
        """The ``failure`` maintenance-log entry of this label (``None`` for an ongoing fault)."""
        if self.failure is None:
            return None
        start = "" if self.fault_start is None else f", fault since {format_time(self.fault_start)}"
        return make_event(MaintenanceLog, asset_id=self.asset_id, ts=self.failure, kind="failure",
                          text=f"failure (labelled in {self.source}{start})")


def read_labels(path: Path, report: ProblemReport) -> Iterator[LabelRow]:
    """The rows of a labels file; bad rows are reported (file, line, column) and skipped."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield from _rows(path, handle, report)
    except OSError as exc:
        report.add(path, None, None, f"cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        report.add(path, None, None, f"not UTF-8 text ({exc.reason})")


def _rows(path: Path, handle: Iterator[str], report: ProblemReport) -> Iterator[LabelRow]:
    iso = TimeFormat("iso")
    reader = csv.reader(handle)
    header = [cell.strip() for cell in next(reader, [])]
    if header != list(HEADER):
        report.add(path, 1, None, f"expected the header {','.join(HEADER)}, found {','.join(header)!r}")
        return
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(HEADER):
            report.add(path, line, None, f"{len(row)} fields, expected {len(HEADER)}")
            continue
        asset, start_text, failure_text = (cell.strip() for cell in row)
        times: list[int | None] = []
        for column, text in ((2, start_text), (3, failure_text)):
            try:
                times.append(iso.parse(text) if text else None)
            except ValueError as exc:
                report.add(path, line, column, f"column {HEADER[column - 1]!r}: {exc}")
                break
        if len(times) < 2:
            continue
        start, failure = times
        if not asset:
            report.add(path, line, 1, "column 'asset_id': empty")
        elif start is None and failure is None:
            report.add(path, line, None, "fault_start and failure are both empty")
        elif start is not None and failure is not None and failure < start:
            report.add(path, line, 3, "column 'failure': before fault_start")
        else:
            row_label = LabelRow(asset, start, failure, f"{path.name}:{line}")
            try:
                row_label.failure_log()
            except InvalidEventError as exc:
                report.add(path, line, 1, f"column 'asset_id': {exc}")
                continue
            yield row_label


def write_labels(directory: Path, rows: list[LabelRow]) -> tuple[Path, int]:
    """Add ``rows`` to ``directory/labels.csv`` (created with its header; rows already there are not repeated).

    Returns the file and how many rows it holds.
    """
    path = directory / FILE_NAME
    lines: list[str] = []
    if path.exists():
        lines = [line for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    for row in rows:
        text = row.csv_line()
        if text not in lines:
            lines.append(text)
    buffer = io.StringIO()
    buffer.write(",".join(HEADER) + "\n")
    buffer.writelines(line + "\n" for line in lines)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(temporary, path)
    return path, len(lines)
