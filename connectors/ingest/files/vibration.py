"""Vibration recordings as :class:`~fusewatch.core.events.VibrationChunk` snapshots: CSV, WAV, NPY, MATLAB .mat.

Every reader streams: WAV and NPY files are memory-mapped, a MATLAB v7.3 file (HDF5) is read one HDF5 slice per
snapshot, a CSV file one row at a time; only one snapshot's samples are held. A MATLAB v5 file cannot be read in
part: the chosen variable alone is loaded (``scipy.io.loadmat(variable_names=...)``).

Time of the first sample: a time column of the CSV (one time per row), the file name (a
:class:`~connectors.ingest.files.timing.NamePattern`), or ``start_ns`` (the first file; the next files follow
on without a gap). A recording is cut into snapshots of ``snapshot_s`` seconds (the last one may be shorter);
with ``every_s`` only the snapshot starting each ``every_s`` seconds is kept (a gateway sending 1 s a minute):

>>> [(int(a), int(b)) for a, b in spans(10, 2.0, 2.0, None)]
[(0, 4), (4, 8), (8, 10)]
>>> [(int(a), int(b)) for a, b in spans(100, 1.0, 5.0, 30.0)]
[(0, 5), (30, 35), (60, 65), (90, 95)]
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from connectors.ingest.files.problems import ProblemReport, match_name
from connectors.ingest.files.timing import NamePattern, TimeFormat
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import VibrationChunk, make_event
from fusewatch.core.timeutil import NS_PER_S, format_time

FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".wav": "wav", ".npy": "npy", ".mat": "mat"}
_PCM_SCALE = {np.dtype("int16"): 32768.0, np.dtype("int32"): 2147483648.0, np.dtype("uint8"): 128.0}
Progress = Callable[[int], object]


@dataclass(frozen=True)
class VibrationOptions:
    """How vibration files are read (``fusewatch import vibration``'s options; docs/import.md)."""

    asset_id: str | None = None
    sensor_id: str = "accel"
    unit: Literal["g", "m/s^2"] = "g"
    sample_rate_hz: float | None = None
    start_ns: int | None = None
    name_pattern: NamePattern | None = None
    time_column: str | None = None
    time_format: TimeFormat = field(default_factory=TimeFormat)
    columns: tuple[tuple[str | None, str], ...] = ()  # (sensor id or None, CSV column)
    channel: int = 0
    variable: str | None = None
    scale: float = 1.0
    snapshot_s: float = 1.0
    every_s: float | None = None
    delimiter: str = ","


def spans(total: int, rate: float, snapshot_s: float, every_s: float | None) -> Iterator[tuple[int, int]]:
    """Sample ranges ``[start, stop)`` of the snapshots of a recording of ``total`` samples at ``rate``."""
    size = max(1, round(rate * snapshot_s))
    step = max(size, round(rate * every_s)) if every_s is not None else size
    for start in range(0, total, step):
        yield start, min(start + size, total)


@dataclass
class _FileContext:
    path: Path
    asset_id: str
    sensor_id: str
    start_ns: int | None


class VibrationReader:
    """Reads vibration files into chunks; problems go to ``report`` (the file or row is skipped)."""

    def __init__(self, options: VibrationOptions, report: ProblemReport, progress: Progress | None = None) -> None:
        self.options, self.report = options, report
        self.progress: Progress = progress or (lambda n: None)
        self._next_start: int | None = options.start_ns

    def read(self, paths: Sequence[Path]) -> Iterator[VibrationChunk]:
        for path in paths:
            context = self._context(path)
            if context is None:
                self.progress(_size(path))
                continue
            kind = FORMATS.get(path.suffix.lower())
            try:
                if kind == "csv":
                    yield from self._csv(context)
                elif kind is None:
                    self.report.add(path, None, None, f"unknown file type {path.suffix!r} (use .csv, .wav, .npy or"
                                    " .mat)")
                else:
                    with ExitStack() as stack:
                        array, rate = self._open_array(context, kind, stack)
                        if array is not None and rate is not None:
                            yield from self._array(context, array, rate)
            except OSError as exc:
                self.report.add(path, None, None, f"cannot be read: {exc.strerror or exc}")

    def _context(self, path: Path) -> _FileContext | None:
        options = self.options
        fields: dict[str, str] = {}
        start = None
        found = match_name(options.name_pattern, path, self.report)
        if found is False:
            return None
        if found is not None:
            fields, start = found.fields, found.ts
        asset = fields.get("asset_id") or options.asset_id
        if asset is None:
            self.report.add(path, None, None, "no asset id: give --asset or {asset_id} in --time-pattern")
            return None
        if start is None and options.time_column is None:
            start = self._next_start
            if start is None:
                self.report.add(path, None, None, "no start time: give --start, a time column or a --time-pattern"
                                " with date codes")
                return None
        return _FileContext(path, asset, fields.get("sensor_id") or options.sensor_id, start)

    # -- arrays: WAV, NPY, MAT -------------------------------------------------------------------------------
    def _open_array(self, context: _FileContext, kind: str, stack: ExitStack) -> tuple[Any, float | None]:
        path, options = context.path, self.options
        rate = options.sample_rate_hz
        try:
            if kind == "wav":
                from scipy.io import wavfile

                file_rate, data = wavfile.read(path, mmap=True)
                rate = options.sample_rate_hz or float(file_rate)
                scale = _PCM_SCALE.get(data.dtype)
                array = _channel(_FileArray.of(data, stack), options.channel, path, self.report)
                if array is None:
                    return None, None
                return _Scaled(array, 1.0 / scale if scale else 1.0, 128.0 if data.dtype == np.uint8 else 0.0), rate
            if kind == "npy":
                mapped = np.load(path, mmap_mode="r", allow_pickle=False)
                array = _channel(_FileArray.of(mapped, stack), options.channel, path, self.report)
            else:
                array = self._mat(path, stack)
        except (ValueError, EOFError) as exc:
            self.report.add(path, None, None, f"cannot be read as {kind.upper()}: {exc}")
            return None, None
        if array is None:
            return None, None
        if rate is None:
            self.report.add(path, None, None, f"{kind.upper()} files carry no sample rate: give --sample-rate")
            return None, None
        return array, rate

    def _mat(self, path: Path, stack: ExitStack) -> Any:
        with open(path, "rb") as handle:
            head = handle.read(128)
        if head.startswith(b"MATLAB 7.3"):
            import h5py

            mat = stack.enter_context(h5py.File(path, "r"))
            names = [name for name, item in mat.items() if isinstance(item, h5py.Dataset) and item.size > 1
                     and item.dtype.kind in "fiu"]
            name = self._variable(path, names)
            if name is None:
                return None
            dataset = mat[name]
            # MATLAB stores column-major: an N x C matrix is an HDF5 dataset of shape (C, N)
            if dataset.ndim == 1:
                return dataset
            if dataset.ndim != 2:
                self.report.add(path, None, None, f"variable {name!r}: {dataset.ndim} dimensions, expected 1 or 2")
                return None
            channels, samples = dataset.shape
            if samples == 1:
                return _H5Channel(dataset, None)
            if channels == 1:
                return _H5Channel(dataset, 0)
            if not 0 <= self.options.channel < channels:
                self.report.add(path, None, None, f"variable {name!r} has {channels} channels (columns); --channel"
                                f" {self.options.channel} is not one of them")
                return None
            return _H5Channel(dataset, self.options.channel)
        from scipy.io import loadmat, whosmat

        names = [name for name, shape, cls in whosmat(path) if int(np.prod(shape)) > 1
                 and cls in ("double", "single", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")]
        name = self._variable(path, names)
        if name is None:
            return None
        data = loadmat(path, variable_names=[name])[name]
        data = data.reshape(-1) if 1 in data.shape else data
        return _channel(data, self.options.channel, path, self.report)

    def _variable(self, path: Path, names: list[str]) -> str | None:
        wanted = self.options.variable
        if wanted is not None:
            if wanted in names:
                return wanted
            self.report.add(path, None, None, f"no numeric variable {wanted!r}; numeric variables: {', '.join(names)}")
            return None
        if len(names) == 1:
            return names[0]
        listed = ", ".join(names) if names else "none"
        self.report.add(path, None, None, f"choose the variable with --variable (numeric variables: {listed})")
        return None

    def _array(self, context: _FileContext, array: Any, rate: float) -> Iterator[VibrationChunk]:
        options = self.options
        start = context.start_ns if context.start_ns is not None else 0
        total = len(array)
        itemsize = int(getattr(array, "itemsize", 4))
        for first, stop in spans(total, rate, options.snapshot_s, options.every_s):
            samples = np.asarray(array[first:stop], dtype=np.float64) * options.scale
            ts = start + round(first * NS_PER_S / rate)
            chunk = self.chunk(context, context.sensor_id, ts, rate, samples, f"samples {first}..{stop - 1}")
            if chunk is not None:
                yield chunk
            self.progress((stop - first) * itemsize)
        self._next_start = start + round(total * NS_PER_S / rate)

    def chunk(self, context: _FileContext, sensor: str, ts: int, rate: float, samples: Any,
               where: str, line: int | None = None) -> VibrationChunk | None:
        try:
            return make_event(VibrationChunk, asset_id=context.asset_id, sensor_id=sensor, ts=ts,
                              sample_rate_hz=float(rate), unit=self.options.unit,
                              samples=np.asarray(samples, dtype=np.float32))
        except InvalidEventError as exc:
            self.report.add(context.path, line, None, f"{where} at {format_time(max(ts, 0))}: {exc}")
            return None

    # -- CSV ---------------------------------------------------------------------------------------------------
    def _csv(self, context: _FileContext) -> Iterator[VibrationChunk]:
        with open(context.path, "rb") as binary:
            text = _CountingText(binary, self.progress)
            reader = csv.reader(text, delimiter=self.options.delimiter)
            header = [cell.strip() for cell in next(reader, [])]
            columns = self._csv_columns(context, header)
            if columns is None:
                return
            try:
                yield from _CsvChunker(self, context, header, columns).run(reader)
            except _StopFile:
                return

    def _csv_columns(self, context: _FileContext, header: list[str]) -> list[tuple[str, int]] | None:
        options = self.options
        if not header:
            self.report.add(context.path, 1, None, "empty file: expected a header row of column names")
            return None
        if options.time_column is not None and options.time_column not in header:
            self.report.add(context.path, 1, None, f"no time column {options.time_column!r} in the header"
                            f" ({', '.join(header)})")
            return None
        wanted = options.columns or tuple((None, name) for name in header if name != options.time_column)
        columns = []
        for sensor, name in wanted:
            if name not in header:
                self.report.add(context.path, 1, None, f"no column {name!r} in the header ({', '.join(header)})")
                return None
            columns.append((sensor or (name if len(wanted) > 1 else context.sensor_id), header.index(name)))
        return columns


class _CsvChunker:
    """Rows of a vibration CSV into chunks, one per value column; a bad row ends the snapshot it falls in."""

    def __init__(self, owner: VibrationReader, context: _FileContext, header: list[str],
                 columns: list[tuple[str, int]]) -> None:
        self.owner, self.context, self.header, self.columns = owner, context, header, columns
        options = owner.options
        self.time_index = header.index(options.time_column) if options.time_column is not None else None
        self.rate = options.sample_rate_hz
        self.values: list[list[float]] = [[] for _ in columns]
        self.times: list[int] = []
        self.first_index = 0
        self.first_line = 0
        self.last_kept: int | None = None

    def run(self, reader: Any) -> Iterator[VibrationChunk]:
        options, report, path = self.owner.options, self.owner.report, self.context.path
        snapshot_ns = round(options.snapshot_s * NS_PER_S)
        every_ns = round(options.every_s * NS_PER_S) if options.every_s is not None else None
        index = -1
        for row in reader:
            index += 1
            line = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                index -= 1
                continue
            if len(row) != len(self.header):
                report.add(path, line, None, f"{len(row)} fields, the header has {len(self.header)}")
                yield from self.flush()
                continue
            ts = self._row_time(row, index, line)
            values = self._row_values(row, line) if ts is not None else None
            if ts is None or values is None:
                yield from self.flush()
                continue
            if self.times and (ts - self.times[0] >= snapshot_ns or ts <= self.times[-1] or self._gap(ts)):
                yield from self.flush()
            if not self.times:
                if every_ns is not None and self.last_kept is not None and ts < self.last_kept + every_ns:
                    continue
                self.first_index, self.first_line = index, line
            self.times.append(ts)
            for column, value in zip(self.values, values, strict=True):
                column.append(value)
        yield from self.flush()

    def _gap(self, ts: int) -> bool:
        rate = self.rate
        return self.time_index is not None and rate is not None and ts - self.times[-1] > 1.5 * NS_PER_S / rate

    def _row_time(self, row: list[str], index: int, line: int) -> int | None:
        if self.time_index is None:
            rate = self.owner.options.sample_rate_hz
            if rate is None:
                self.owner.report.add(self.context.path, None, None, "no sample rate: give --sample-rate (or a time"
                                      " column)")
                raise _StopFile
            return int(self.context.start_ns or 0) + round(index * NS_PER_S / rate)
        try:
            return self.owner.options.time_format.parse(row[self.time_index])
        except ValueError as exc:
            self._bad(line, self.time_index, str(exc))
            return None

    def _row_values(self, row: list[str], line: int) -> list[float] | None:
        values = []
        for _, position in self.columns:
            cell = row[position].strip()
            try:
                value = float(cell)
            except ValueError:
                self._bad(line, position, f"not a number: {cell!r}")
                return None
            if not np.isfinite(value):
                self._bad(line, position, f"not a finite number: {cell!r}")
                return None
            values.append(value)
        return values

    def _bad(self, line: int, position: int, reason: str) -> None:
        self.owner.report.add(self.context.path, line, position + 1, f"column {self.header[position]!r}: {reason}")

    def flush(self) -> Iterator[VibrationChunk]:
        if not self.times:
            return
        times, values = self.times, self.values
        self.times, self.values = [], [[] for _ in self.columns]
        rate = self.rate
        if rate is None:
            if len(times) < 2:
                self.owner.report.add(self.context.path, self.first_line, None, "a snapshot of one sample: its sample"
                                      " rate is unknown, give --sample-rate")
                return
            rate = self.rate = NS_PER_S / float(np.median(np.diff(times)))
        self.last_kept = times[0]
        for (sensor, _), samples in zip(self.columns, values, strict=True):
            scaled = np.asarray(samples) * self.owner.options.scale
            chunk = self.owner.chunk(self.context, sensor, times[0], rate, scaled, f"rows from line {self.first_line}",
                                     self.first_line)
            if chunk is not None:
                yield chunk


class _StopFile(Exception):
    """The file cannot be read further (reported already)."""


class _CountingText:
    """Lines of a binary file as text, reporting the bytes read to ``progress`` (for the progress bar)."""

    def __init__(self, binary: Any, progress: Progress) -> None:
        self.binary, self.progress = binary, progress

    def __iter__(self) -> Iterator[str]:
        pending = 0
        for raw in self.binary:
            pending += len(raw)
            if pending > 1 << 20:
                self.progress(pending)
                pending = 0
            yield raw.decode("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8", errors="replace")
        self.progress(pending)


class _FileArray:
    """A memory-mapped array of a file (NPY, WAV) read with plain reads, one slice at a time.

    Slicing the memory map itself would leave every page read resident (a 1 GB file read through shows as 1 GB
    of resident memory); reading each slice into a buffer of its own keeps memory at one snapshot.
    """

    def __init__(self, handle: Any, offset: int, dtype: np.dtype[Any], shape: tuple[int, ...],
                 column: int | None = None) -> None:
        self.handle, self.offset, self.dtype, self.shape, self.column = handle, offset, dtype, shape, column
        self.ndim = len(shape) if column is None else 1
        self.itemsize = dtype.itemsize

    @classmethod
    def of(cls, mapped: Any, stack: ExitStack) -> Any:
        """A reader of ``mapped``'s file for a C-ordered memory map; ``mapped`` itself otherwise."""
        filename, offset = getattr(mapped, "filename", None), getattr(mapped, "offset", None)
        if filename is None or offset is None or not mapped.flags.c_contiguous:
            return mapped
        handle = stack.enter_context(open(filename, "rb"))  # noqa: SIM115 - closed by the stack
        shape, dtype = tuple(mapped.shape), mapped.dtype
        del mapped  # the map is not read from
        return cls(handle, int(offset), dtype, shape)

    def __len__(self) -> int:
        return int(self.shape[0])

    def channel(self, index: int) -> _FileArray:
        return _FileArray(self.handle, self.offset, self.dtype, self.shape, index)

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, _ = index.indices(len(self))
        row = self.itemsize * (int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1)
        data = os.pread(self.handle.fileno(), (stop - start) * row, self.offset + start * row)
        block = np.frombuffer(data, dtype=self.dtype).reshape((-1, *self.shape[1:]))
        return block[:, self.column] if self.column is not None else block


class _Scaled:
    """An integer PCM array seen as floats: ``(x - offset) * factor``, sliced lazily."""

    def __init__(self, array: Any, factor: float, offset: float) -> None:
        self.array, self.factor, self.offset = array, factor, offset
        self.itemsize = array.dtype.itemsize

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: slice) -> np.ndarray:
        part = np.asarray(self.array[index], dtype=np.float64)
        return (part - self.offset) * self.factor if self.factor != 1.0 or self.offset else part


class _H5Channel:
    """One channel of an HDF5 dataset, read slice by slice: ``(channels, samples)`` row ``row``, or ``(N, 1)``."""

    def __init__(self, dataset: Any, row: int | None) -> None:
        self.dataset, self.row = dataset, row
        self.itemsize = dataset.dtype.itemsize

    def __len__(self) -> int:
        return int(self.dataset.shape[1] if self.row is not None else self.dataset.shape[0])

    def __getitem__(self, index: slice) -> np.ndarray:
        return np.asarray(self.dataset[self.row, index] if self.row is not None else self.dataset[index, 0])


def _channel(data: Any, channel: int, path: Path, report: ProblemReport) -> Any:
    """One channel of a 1-D (samples) or 2-D (samples x channels) array, still unread."""
    if data.ndim == 1:
        return data
    if data.ndim == 2:
        if not 0 <= channel < data.shape[1]:
            report.add(path, None, None, f"{data.shape[1]} channels; --channel {channel} is not one of them")
            return None
        return data.channel(channel) if isinstance(data, _FileArray) else data[:, channel]
    report.add(path, None, None, f"an array of shape {data.shape}: expected samples, or samples x channels")
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
