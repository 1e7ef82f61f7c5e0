"""The embedded default sink: scores, features, alerts, dead letters and ground truth in one SQLite file.

A :class:`~connectors.sinks.base.Sink` (it stores scores, alerts and dead letters; log entries are ignored).
Writes are buffered in memory; :meth:`SqliteSink.flush` writes them in one transaction (``executemany``); while
another writer holds the database longer than ``busy_timeout_s``, it raises
:class:`~fusewatch.core.errors.SinkUnavailableError` and keeps the buffers. Keys are deterministic, so a replay
or a second write of the same record replaces it instead of duplicating: scores (with their features) by
``(asset_id, run_id, window_end)``, alerts by ``(alert_id, transition)``, ground truth by ``asset_id``, dead
letters by a digest of all their fields. Event time is stored as int nanoseconds (UTC);
the views ``scores_utc``, ``alerts_utc`` and ``ground_truth_utc`` add RFC 3339 columns (millisecond precision).

Features are REAL columns ``f_<name>`` of the ``scores`` row (added as names appear, exact names in table
``feature_columns``): ~10x cheaper to write than a row per value. Views ``features`` (one column per feature) and
``feature_values`` (asset_id, window_end, run_id, name, value) show them.

>>> with SqliteSink(":memory:") as sink:
...     sink.add_ground_truth([GroundTruth(asset_id="pump-1", asset_kind="pump", fault_type=None,
...                            onset_at=None, failure_at=None, restart_at=None, first_modality=None)])
...     [truth.asset_id for truth in sink.read_ground_truth()], sink.count("scores")
(['pump-1'], 0)
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

import numpy as np

from connectors.sinks.base import Record, RecordKind
from fusewatch.core.errors import FusewatchError, SinkUnavailableError
from fusewatch.core.events import MODALITIES, Alert, DeadLetter, GroundTruth, Score, SimilarIncident

SCHEMA_VERSION = 1
TableName = Literal["scores", "alerts", "features", "dead_letters"]
_TABLES = frozenset({"scores", "alerts", "features", "dead_letters", "ground_truth"})
_FIXED_COLUMNS = (
    "asset_id", "window_start", "window_end", "run_id", "model_version", "fused",
    *(f"{kind}_{m}" for kind in ("raw", "calibrated", "contribution") for m in MODALITIES),
    "present", "leading", "warmup", "top_features", "has_features",
)  # fmt: skip
_SCORE_COLUMNS = len(_FIXED_COLUMNS)
_ALERT_FIELDS = ("alert_id", "asset_id", "ts", "transition", "severity", "fused", "leading", "opened_at", "run_id")
_ALERT_COLUMNS = ", ".join((*_ALERT_FIELDS, "contributions", "top_features", "similar_incidents"))
_TRANSITION_ORDER = "instr('opened escalated acknowledged suppressed closed', transition)"
_TRUTH_FIELDS = ("asset_id", "asset_kind", "fault_type", "onset_at", "failure_at", "restart_at", "first_modality")
_LETTER_FIELDS = ("source_topic", "partition", "offset", "error", "raw_base64", "ts")
_MAX_VIEW_COLUMNS = 500  # SQLite's default limit on the terms of one compound SELECT
_UTC = "strftime('%Y-%m-%dT%H:%M:%fZ', {0} / 1e9, 'unixepoch')"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS scores (
    asset_id TEXT NOT NULL, window_start INTEGER NOT NULL, window_end INTEGER NOT NULL, run_id TEXT NOT NULL,
    model_version TEXT NOT NULL, fused REAL NOT NULL, raw_vibration REAL, raw_camera REAL, raw_logs REAL,
    calibrated_vibration REAL, calibrated_camera REAL, calibrated_logs REAL,
    contribution_vibration REAL, contribution_camera REAL, contribution_logs REAL,
    present INTEGER NOT NULL, leading TEXT, warmup INTEGER NOT NULL, top_features TEXT NOT NULL,
    has_features INTEGER NOT NULL, PRIMARY KEY (asset_id, run_id, window_end)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feature_columns (
    position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, column_name TEXT NOT NULL UNIQUE);
CREATE VIEW IF NOT EXISTS features AS SELECT asset_id, window_end, run_id FROM scores WHERE has_features;
CREATE VIEW IF NOT EXISTS feature_values AS
    SELECT asset_id, window_end, run_id, NULL AS name, NULL AS value FROM scores WHERE 0;
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT NOT NULL, transition TEXT NOT NULL, asset_id TEXT NOT NULL, ts INTEGER NOT NULL,
    severity TEXT NOT NULL, fused REAL NOT NULL, contributions TEXT NOT NULL, leading TEXT,
    top_features TEXT NOT NULL, opened_at INTEGER NOT NULL, run_id TEXT NOT NULL,
    similar_incidents TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (alert_id, transition));
CREATE INDEX IF NOT EXISTS alerts_by_asset ON alerts (asset_id, ts);
CREATE TABLE IF NOT EXISTS dead_letters (
    letter_key TEXT PRIMARY KEY, source_topic TEXT NOT NULL, source_partition INTEGER NOT NULL,
    source_offset INTEGER NOT NULL, error TEXT NOT NULL, raw_base64 TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ground_truth (
    asset_id TEXT PRIMARY KEY, asset_kind TEXT NOT NULL, fault_type TEXT, onset_at INTEGER, failure_at INTEGER,
    restart_at INTEGER, first_modality TEXT);
CREATE VIEW IF NOT EXISTS scores_utc AS SELECT {_UTC.format("window_end")} AS window_end_utc, * FROM scores;
CREATE VIEW IF NOT EXISTS alerts_utc AS
    SELECT {_UTC.format("ts")} AS ts_utc, {_UTC.format("opened_at")} AS opened_at_utc, * FROM alerts;
CREATE VIEW IF NOT EXISTS ground_truth_utc AS SELECT *, {_UTC.format("onset_at")} AS onset_at_utc,
    {_UTC.format("failure_at")} AS failure_at_utc, {_UTC.format("restart_at")} AS restart_at_utc FROM ground_truth;
"""

# numpy scalars expose the buffer protocol, so sqlite3 would silently store np.float32(4.0) as the BLOB b"\0\0\x80@":
# adapt them to Python numbers instead (process-wide, but only for types that are never meant to be stored as bytes)
_NUMPY_SCALARS: tuple[tuple[type[Any], type[Any]], ...] = (
    *((t, float) for t in (np.float16, np.float32, np.longdouble)),
    *((t, int) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)),
)
for _type, _python in _NUMPY_SCALARS:
    sqlite3.register_adapter(_type, _python)


@dataclass(frozen=True)
class ScoreSeries:
    """The scores of one asset and run as column arrays, sorted by window end.

    ``window_end_ns`` is int64, ``fused`` float64, ``warmup`` bool; ``calibrated`` holds NaN and
    ``contributions`` 0.0 where a modality was absent (keys: ``vibration``, ``camera``, ``logs``).
    """

    window_end_ns: np.ndarray
    fused: np.ndarray
    warmup: np.ndarray
    calibrated: dict[str, np.ndarray]
    contributions: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.window_end_ns.size)


def _quote(text: str, quote: str = '"') -> str:
    """Quote an SQL identifier (or, with ``quote="'"``, a string literal)."""
    return quote + text.replace(quote, quote * 2) + quote


_json_name = functools.lru_cache(maxsize=4096)(json.dumps)


def pairs_json(pairs: Sequence[tuple[str, float]]) -> str:
    """Encode ``(name, value)`` pairs as a JSON array of arrays, faster than :func:`json.dumps`.

    >>> pairs_json([("rms", 0.5), ('a"b', 1)]), pairs_json([])
    ('[["rms",0.5],["a\\\\"b",1.0]]', '[]')
    """
    parts = []
    for name, value in pairs:
        number = float(value)
        parts.append(f"[{_json_name(name)},{float.__repr__(number) if number - number == 0 else json.dumps(number)}]")
    return "[" + ",".join(parts) + "]"


class SqliteSink:
    """Buffered writer and reader of one SQLite database file in WAL mode.

    Parameters
    ----------
    path
        The database file (created with its parent directories if needed), or ``":memory:"``.
    max_buffered
        Safety net: :meth:`add_score` flushes by itself once this many scores are buffered.
    busy_timeout_s
        How long a flush waits for another writer's lock before it raises ``SinkUnavailableError``.

    Notes
    -----
    Readers flush first, so they see everything added so far. ``run_id=None`` means every run, except in
    :meth:`read_scores`, where it means the latest run (by first write) that has scores for the asset.
    A lock serialises the methods, so several threads may share one sink.
    """

    kinds: ClassVar[frozenset[RecordKind]] = frozenset({Score, Alert, DeadLetter})

    def __init__(self, path: str | Path, *, max_buffered: int = 200_000, busy_timeout_s: float = 5.0) -> None:
        self.path = path if str(path) == ":memory:" else Path(path)
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._max_buffered = max_buffered
        self._lock = threading.RLock()
        conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._conn: sqlite3.Connection | None = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # never corrupt; a power cut may lose the last commits
        conn.execute("PRAGMA cache_size=-32000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            conn.close()
            raise FusewatchError(f"{path}: schema version {version}, this fusewatch reads version {SCHEMA_VERSION}")
        conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        self._runs: set[str] = {row[0] for row in conn.execute("SELECT run_id FROM runs")}
        mapping = conn.execute("SELECT name, column_name FROM feature_columns ORDER BY position").fetchall()
        self._feature_names: list[str] = [name for name, _ in mapping]
        self._feature_columns: list[str] = [column for _, column in mapping]
        self._known_features: set[str] = set(self._feature_names)
        self._encode = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode
        self._new_runs: list[str] = []
        self._scores: list[tuple[Any, ...]] = []  # buffers, one row tuple per record
        self._alerts: list[tuple[Any, ...]] = []
        self._letters: list[tuple[Any, ...]] = []
        self._truths: list[tuple[Any, ...]] = []

    def __repr__(self) -> str:
        return f"SqliteSink({str(self.path)!r})"

    def add(self, record: Record) -> None:
        """Buffer a score, alert transition or dead letter (a log entry is ignored)."""
        if isinstance(record, Score):
            self.add_score(record)
        elif isinstance(record, Alert):
            self.add_alert(record)
        elif isinstance(record, DeadLetter):
            self.add_dead_letter(record)

    def add_score(self, score: Score) -> None:
        """Buffer one score with the feature values of its window, if any (NaN is stored as NULL)."""
        features = score.features
        raw, cal, con, present = score.raw, score.calibrated, score.contributions, score.present
        mask = present.get("vibration", False) + 2 * present.get("camera", False) + 4 * present.get("logs", False)
        head = (
            score.asset_id, score.window_start, score.window_end, score.run_id, score.model_version, score.fused,
            raw.get("vibration"), raw.get("camera"), raw.get("logs"),
            cal.get("vibration"), cal.get("camera"), cal.get("logs"),
            con.get("vibration"), con.get("camera"), con.get("logs"),
            mask, score.leading, score.warmup, pairs_json(score.top_features),
        )  # fmt: skip
        with self._lock:
            if score.run_id not in self._runs:
                self._runs.add(score.run_id)
                self._new_runs.append(score.run_id)
            if not features:
                self._scores.append((*head, 0))
            else:
                if not self._known_features.issuperset(features):
                    new = [name for name in features if name not in self._known_features]
                    self._known_features.update(new)
                    self._feature_names.extend(new)
                self._scores.append((*head, 1, *map(features.get, self._feature_names)))
            if len(self._scores) >= self._max_buffered:
                self.flush()

    def add_alert(self, alert: Alert) -> None:
        """Buffer one alert transition."""
        row = (*(getattr(alert, name) for name in _ALERT_FIELDS), self._encode(alert.contributions),
               pairs_json(alert.top_features),
               json.dumps([m.model_dump(mode="json") for m in alert.similar_incidents]))  # fmt: skip
        with self._lock:
            if alert.run_id not in self._runs:
                self._runs.add(alert.run_id)
                self._new_runs.append(alert.run_id)
            self._alerts.append(row)

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Buffer one dead letter; the same letter written twice is stored once."""
        fields = tuple(getattr(letter, name) for name in _LETTER_FIELDS)
        key = hashlib.blake2b(self._encode(fields).encode(), digest_size=16).hexdigest()
        with self._lock:
            self._letters.append((key, *fields))

    def add_ground_truth(self, truths: Iterable[GroundTruth]) -> None:
        """Buffer the ground truth of simulated assets (one record per asset: the last one wins)."""
        rows = [tuple(getattr(truth, name) for name in _TRUTH_FIELDS) for truth in truths]
        with self._lock:
            self._truths.extend(rows)

    def flush(self) -> None:
        """Write everything buffered in one transaction; on failure nothing is written and the buffers are kept."""
        with self._lock:
            conn = self._connection()
            if not (self._scores or self._alerts or self._letters or self._truths):
                return
            try:
                self._write_buffers(conn)
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise SinkUnavailableError(f"SQLite database {self.path} is locked by another writer: {exc}",
                                               retry_after_s=1.0) from exc
                raise
            self._new_runs, self._scores, self._alerts, self._letters, self._truths = [], [], [], [], []

    def discard(self) -> None:
        """Forget what is buffered and not yet written."""
        with self._lock:
            self._runs.difference_update(self._new_runs)
            del self._feature_names[len(self._feature_columns) :]
            self._known_features = set(self._feature_names)
            self._new_runs, self._scores, self._alerts, self._letters, self._truths = [], [], [], [], []

    def _write_buffers(self, conn: sqlite3.Connection) -> None:
        """One transaction with every buffered row; rolled back entirely on failure."""
        stored_columns = len(self._feature_columns)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR IGNORE INTO runs (run_id) VALUES (?)", [(r,) for r in self._new_runs])
            if len(self._feature_columns) < len(self._feature_names):
                self._add_feature_columns(conn)
            self._write_scores(conn)
            conn.executemany(f"INSERT OR REPLACE INTO alerts ({_ALERT_COLUMNS}) VALUES ({', '.join('?' * 12)})",
                             self._alerts)  # fmt: skip
            conn.executemany("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?)", self._letters)
            conn.executemany("INSERT OR REPLACE INTO ground_truth VALUES (?, ?, ?, ?, ?, ?, ?)", self._truths)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself on some errors (e.g. disk full)
                conn.execute("ROLLBACK")
            del self._feature_columns[stored_columns:]  # their ALTER TABLEs were rolled back too
            raise

    def _write_scores(self, conn: sqlite3.Connection) -> None:
        columns = [*_FIXED_COLUMNS, *(_quote("f_" + c) for c in self._feature_columns)]
        # consecutive rows of one width share a statement (a row is shorter when it has no features or when
        # names appeared after it): omitted columns are NULL, and keeping the order lets the last write win
        for width, group in itertools.groupby(self._scores, key=len):
            rows = list(group)
            sql = f"INSERT OR REPLACE INTO scores ({', '.join(columns[:width])}) VALUES ({', '.join('?' * width)})"
            try:
                conn.executemany(sql, rows)
            except sqlite3.ProgrammingError:  # a feature value sqlite3 cannot bind (e.g. Decimal): coerce
                conn.executemany(sql, [r[:_SCORE_COLUMNS] + tuple(map(_as_float, r[_SCORE_COLUMNS:])) for r in rows])

    def _add_feature_columns(self, conn: sqlite3.Connection) -> None:
        used = {c.lower() for c in self._feature_columns}
        for position in range(len(self._feature_columns), len(self._feature_names)):
            name = self._feature_names[position]
            column = base = "".join(ch if ch.isalnum() else "_" for ch in name) or "feature"
            suffix = 1
            while column.lower() in used:  # SQLite column names are case-insensitive
                suffix += 1
                column = f"{base}_{suffix}"
            used.add(column.lower())
            self._feature_columns.append(column)
            conn.execute(f"ALTER TABLE scores ADD COLUMN {_quote('f_' + column)} REAL")
            conn.execute("INSERT INTO feature_columns VALUES (?, ?, ?)", (position, name, column))
        pairs = list(zip(self._feature_names, self._feature_columns, strict=True))
        wide = ", ".join(f"{_quote('f_' + column)} AS {_quote(column)}" for _, column in pairs)
        long = " UNION ALL ".join(
            f"SELECT asset_id, window_end, run_id, {_quote(name, chr(39))} AS name, {_quote('f_' + column)} AS value "
            f"FROM scores WHERE {_quote('f_' + column)} IS NOT NULL"
            for name, column in pairs[:_MAX_VIEW_COLUMNS]
        )
        wide_select = f"SELECT asset_id, window_end, run_id, {wide} FROM scores WHERE has_features"
        for view, select in (("features", wide_select), ("feature_values", long)):
            conn.execute(f"DROP VIEW IF EXISTS {view}")
            conn.execute(f"CREATE VIEW {view} AS {select}")

    def close(self) -> None:
        """Flush and close the database; closing twice is harmless."""
        with self._lock:
            if self._conn is not None:
                try:
                    self.flush()
                finally:
                    self._conn.close()
                    self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise FusewatchError(f"SQLite sink {self.path} is closed")
        return self._conn

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            self.flush()
            return self._connection().execute(sql, params).fetchall()

    def run_ids(self) -> list[str]:
        """Every run id seen, in order of first write."""
        return [row[0] for row in self._query("SELECT run_id FROM runs ORDER BY seq")]

    def asset_ids(self, run_id: str | None = None) -> list[str]:
        """The assets that have scores (in ``run_id``, or in any run), sorted."""
        where, params = ("WHERE run_id = ? ", (run_id,)) if run_id is not None else ("", ())
        return [row[0] for row in self._query(f"SELECT DISTINCT asset_id FROM scores {where}ORDER BY 1", params)]

    def latest_run(self, asset_id: str | None = None) -> str | None:
        """The last run (by first write) that has scores, for ``asset_id`` or for any asset."""
        where, params = ("asset_id = ? AND ", (asset_id,)) if asset_id is not None else ("", ())
        sql = f"SELECT run_id FROM runs r WHERE EXISTS (SELECT 1 FROM scores WHERE {where}run_id = r.run_id)"
        return next((row[0] for row in self._query(sql + " ORDER BY seq DESC LIMIT 1", params)), None)

    def read_scores(self, asset_id: str, run_id: str | None = None) -> ScoreSeries:
        """The scores of one asset as arrays sorted by window end (empty arrays for an unknown asset)."""
        run = run_id if run_id is not None else self.latest_run(asset_id)
        modal = ", ".join(f"calibrated_{m}, COALESCE(contribution_{m}, 0.0)" for m in MODALITIES)
        rows = self._query(
            f"SELECT window_end, fused, warmup, {modal} FROM scores WHERE asset_id = ? AND run_id = ? "
            "ORDER BY window_end",
            (asset_id, run),
        )
        columns = list(zip(*rows, strict=True)) if rows else [()] * (3 + 2 * len(MODALITIES))
        floats = [np.array(column, dtype=np.float64) for column in columns[1:]]  # NULL (None) becomes NaN
        return ScoreSeries(
            window_end_ns=np.array(columns[0], dtype=np.int64),
            fused=floats[0],
            warmup=floats[1].astype(bool),
            calibrated={m: floats[2 + 2 * i] for i, m in enumerate(MODALITIES)},
            contributions={m: floats[3 + 2 * i] for i, m in enumerate(MODALITIES)},
        )

    def read_alerts(self, asset_id: str | None = None, run_id: str | None = None) -> list[Alert]:
        """Alert transitions, filtered by asset and run when given, in event-time order."""
        filters = [(f"{column} = ?", value) for column, value in (("asset_id", asset_id), ("run_id", run_id)) if value]
        where = f"WHERE {' AND '.join(f for f, _ in filters)} " if filters else ""
        rows = self._query(
            f"SELECT {_ALERT_COLUMNS} FROM alerts {where}ORDER BY ts, {_TRANSITION_ORDER}, alert_id",
            tuple(value for _, value in filters),
        )
        return [
            Alert(**dict(zip(_ALERT_FIELDS, row, strict=True)), contributions=json.loads(contributions),
                  top_features=[(name, float(value)) for name, value in json.loads(top)],
                  similar_incidents=[SimilarIncident.model_validate(m, strict=False) for m in json.loads(similar)])
            for *row, contributions, top, similar in rows
        ]  # fmt: skip

    def read_ground_truth(self) -> list[GroundTruth]:
        """The ground truth of every asset, sorted by asset id."""
        rows = self._query(f"SELECT {', '.join(_TRUTH_FIELDS)} FROM ground_truth ORDER BY asset_id")
        return [GroundTruth(**dict(zip(_TRUTH_FIELDS, row, strict=True))) for row in rows]

    def read_dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, in event-time order."""
        columns = "source_topic, source_partition, source_offset, error, raw_base64, ts"
        rows = self._query(f"SELECT {columns} FROM dead_letters ORDER BY ts, {columns}")
        return [DeadLetter(**dict(zip(_LETTER_FIELDS, row, strict=True))) for row in rows]

    def count(self, table: TableName) -> int:
        """The number of rows of a table (``features``: of score rows written with features)."""
        if table not in _TABLES:
            raise ValueError(f"unknown table {table!r}; expected one of {sorted(_TABLES)}")
        return int(self._query(f"SELECT COUNT(*) FROM {table}")[0][0])


def _as_float(value: object) -> float | None:
    """Coerce a feature value to float; what cannot be coerced is stored as NULL rather than poisoning the buffer."""
    try:
        return None if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
