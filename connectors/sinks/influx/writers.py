"""Two InfluxDB sinks behind one interface: the v1 ``/write`` API and the v2 API through influxdb-client.

Both are :class:`~connectors.sinks.base.Sink` implementations: :meth:`~LineProtocolSink.add` turns a record into
line protocol (:func:`~connectors.sinks.influx.points.record_lines`) and buffers it, :meth:`~LineProtocolSink.flush`
writes the buffer synchronously, in gzip-compressed batches of at most ``batch_lines`` lines, and raises instead
of dropping: :class:`~fusewatch.core.errors.SinkBackpressureError` (429: slow down) or its subclass
:class:`~fusewatch.core.errors.SinkUnavailableError` (server down, 5xx), with the server's ``Retry-After``; the
lines not yet written stay buffered for the next flush. :class:`~fusewatch.core.errors.SinkRejectedError` (another
4xx) means the data itself is refused. Points are idempotent: a point with the same measurement, tags and time
overwrites the stored one. influxdb-client's default batching ``WriteApi`` is not used: it returns before the
write, drops batches after its retry time and loses its buffer on a crash.

>>> sink = InfluxV1Sink("http://127.0.0.1:8086", "fusewatch")
>>> sink.add_lines(["m,asset_id=pump-1 value=1.0 1"])
>>> sink.pending, sink.points_written
(1, 0)
>>> sink.discard(); sink.close()  # nothing buffered: no request
"""

from __future__ import annotations

import base64
import gzip
import http.client
import logging
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from connectors.sinks.base import Record, RecordKind, Sink
from connectors.sinks.influx.points import record_lines
from fusewatch.core.errors import AccessDeniedError, SinkBackpressureError, SinkRejectedError, SinkUnavailableError
from fusewatch.core.events import Alert, MaintenanceLog, Score

log = logging.getLogger(__name__)


class InfluxSink(Sink, Protocol):
    """An InfluxDB sink: the :class:`~connectors.sinks.base.Sink` protocol, plus raw line protocol (the sink
    agent's pipeline-health points, benchmarks) and the count of points stored through it."""

    points_written: int

    def add_lines(self, lines: Sequence[str]) -> None: ...

    def write(self, lines: Sequence[str]) -> None: ...


def _retry_after(value: str | None, default: float) -> float:
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default


@dataclass(frozen=True)
class _Answer:
    status: int
    detail: str
    retry_after: str | None
    version: str | None


def _request(url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
             timeout_s: float = 10.0) -> _Answer:
    """One HTTP exchange with the server at ``url`` (``path`` below its base path); raises SinkUnavailableError."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = cls(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request(method, (parts.path.rstrip("/") or "") + path, body=body, headers=headers or {})
        response = connection.getresponse()
        detail = response.read(2000).decode(errors="replace").strip()
        return _Answer(response.status, detail, response.getheader("Retry-After"),
                       response.getheader("X-Influxdb-Version"))
    except (OSError, http.client.HTTPException) as exc:
        raise SinkUnavailableError(f"InfluxDB at {url} is unreachable: {exc}") from exc
    finally:
        connection.close()


def _pushback(status: int, message: str, retry_after: str | None) -> SinkBackpressureError | None:
    """The back-pressure an HTTP status means: 429 asks to slow down, 5xx says the server is unavailable."""
    if status == 429:
        return SinkBackpressureError(message, _retry_after(retry_after, 1.0))
    if status >= 500:
        return SinkUnavailableError(message, _retry_after(retry_after, 1.0))
    return None


class LineProtocolSink:
    """What both InfluxDB sinks share: the buffer of lines, batching, the counts; :meth:`_send` writes a batch."""

    kinds: ClassVar[frozenset[RecordKind]] = frozenset({Score, Alert, MaintenanceLog})

    def __init__(self, batch_lines: int) -> None:
        self.batch_lines = batch_lines
        self.points_written = 0
        self._lines: list[str] = []
        self._closed = False

    @property
    def pending(self) -> int:
        """Lines buffered and not yet written."""
        return len(self._lines)

    def add(self, record: Record) -> None:
        """Buffer the points of ``record`` (a dead letter has none)."""
        self._lines.extend(record_lines(record))

    def add_lines(self, lines: Sequence[str]) -> None:
        """Buffer lines of line protocol as they are."""
        self._lines.extend(lines)

    def flush(self) -> None:
        """Write the buffer batch by batch; a batch leaves the buffer once the server has stored it."""
        while self._lines:
            batch = self._lines[: self.batch_lines]
            try:
                self._send(batch)
            except SinkRejectedError:
                self._lines.clear()
                raise
            del self._lines[: len(batch)]
            self.points_written += len(batch)

    def write(self, lines: Sequence[str]) -> None:
        """Write ``lines`` now, in batches, without the buffer; raises rather than losing any."""
        for start in range(0, len(lines), self.batch_lines):
            batch = list(lines[start : start + self.batch_lines])
            self._send(batch)
            self.points_written += len(batch)

    def discard(self) -> None:
        """Forget the lines not yet written."""
        self._lines.clear()

    def close(self) -> None:
        """Flush, then release the connections (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._release()

    def _send(self, batch: list[str]) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Nothing is held open between writes."""


class InfluxV1Sink(LineProtocolSink):
    """InfluxDB 1.x: ``POST /write?db=DATABASE&precision=ns`` with a gzip body (user and password optional)."""

    def __init__(
        self, url: str, database: str, username: str | None = None, password: str | None = None,
        retention_policy: str | None = None, batch_lines: int = 5000, timeout_s: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url}: an InfluxDB URL is http(s)://host[:port]")
        super().__init__(batch_lines)
        query = {"db": database, "precision": "ns"}
        if retention_policy:
            query["rp"] = retention_policy
        self._path = "/write?" + urllib.parse.urlencode(query)
        self._auth: dict[str, str] = {}  # HTTP basic, never in the URL (which servers and proxies log)
        if username:
            pair = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth = {"Authorization": f"Basic {pair}"}
        self.username = username
        self.timeout_s = timeout_s
        self.url = url
        self.database = database

    def __repr__(self) -> str:
        return f"InfluxV1Sink({self.url!r}, database={self.database!r})"

    def _send(self, batch: list[str]) -> None:
        body = gzip.compress("\n".join(batch).encode(), compresslevel=5)
        answer = _request(self.url, "POST", self._path, body, {
            "Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8", **self._auth}, self.timeout_s)
        if answer.status == 204:
            return
        self._check_access(answer)
        pushback = _pushback(answer.status, f"InfluxDB at {self.url} answered {answer.status}: {answer.detail}",
                             answer.retry_after)
        if pushback is not None:
            raise pushback
        raise SinkRejectedError(f"InfluxDB at {self.url} refused the points ({answer.status}): {answer.detail}")

    def ensure_database(self) -> None:
        """Create the database if it does not exist (``CREATE DATABASE`` is idempotent in InfluxQL)."""
        query = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.database}"'}).encode()
        answer = _request(self.url, "POST", "/query", query,
                          {"Content-Type": "application/x-www-form-urlencoded", **self._auth}, self.timeout_s)
        if answer.status == 403 and self.username:  # a user with write rights only: the database is an admin's job
            log.info("InfluxDB at %s: user %s may not create databases; writing to %s as it is", self.url,
                     self.username, self.database)
            return
        self._check_access(answer)
        if answer.status != 200 or '"error"' in answer.detail:
            raise SinkRejectedError(f"InfluxDB at {self.url} could not create {self.database}: {answer.detail}")

    def _check_access(self, answer: _Answer) -> None:
        """:class:`AccessDeniedError` for 401 (no or wrong credentials) and 403 (no rights on the database)."""
        if answer.status not in (401, 403):
            return
        who = f"user {self.username!r}" if self.username else "a client without credentials"
        detail = answer.detail.removeprefix('{"error":"').removesuffix('"}')
        check = ("influx.username and influx.password" if answer.status == 401
                 else f"the user's WRITE privilege on {self.database}")
        raise AccessDeniedError(f"InfluxDB at {self.url} refused {who}: {detail} (check {check})")


class InfluxV2Sink(LineProtocolSink):
    """InfluxDB 2.x/3.x (and 1.8+ compatibility): influxdb-client's synchronous write API, gzip on."""

    def __init__(self, url: str, org: str, bucket: str, token: str, batch_lines: int = 5000,
                 timeout_s: float = 10.0) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        super().__init__(batch_lines)
        self.url, self.org, self.bucket = url, org, bucket
        self._client = InfluxDBClient(url=url, token=token, org=org, enable_gzip=True,
                                      timeout=int(timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def __repr__(self) -> str:
        return f"InfluxV2Sink({self.url!r}, org={self.org!r}, bucket={self.bucket!r})"

    def _send(self, batch: list[str]) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._api.write(bucket=self.bucket, org=self.org, record=batch,
                            write_precision=WritePrecision.NS)  # type: ignore[arg-type]  # a str-valued enum
        except ApiException as exc:
            status = int(exc.status or 0)
            headers: dict[str, str] = dict(exc.headers or {})
            pushback = _pushback(status, f"InfluxDB at {self.url} answered {status}", headers.get("Retry-After"))
            if pushback is not None:
                raise pushback from exc
            raise SinkRejectedError(f"InfluxDB at {self.url} refused the points ({status}): {exc.body}") from exc
        except (HTTPError, OSError) as exc:
            raise SinkUnavailableError(f"InfluxDB at {self.url} is unreachable: {exc}") from exc

    def _release(self) -> None:
        """Close the client's connection pool."""
        self._client.close()  # type: ignore[no-untyped-call]


def detect_api(url: str, timeout_s: float = 5.0) -> str:
    """``"v1"`` or ``"v2"``: which write API the server at ``url`` speaks, from its ``/ping`` version header.

    InfluxDB 1.8+ answers both; it is reported as ``"v1"`` here (no token needed). An unreachable server raises
    :class:`~fusewatch.core.errors.SinkUnavailableError`.
    """
    version = (_request(url, "GET", "/ping", timeout_s=timeout_s).version or "").lstrip("v")
    if not version:
        raise SinkRejectedError(f"{url} does not answer /ping like InfluxDB (no X-Influxdb-Version header)")
    return "v1" if version.split(".")[0] == "1" else "v2"


def open_sink(url: str, database: str = "fusewatch", token: str | None = None, org: str | None = None,
              username: str | None = None, password: str | None = None) -> InfluxSink:
    """A sink for the server at ``url``, its API detected from ``/ping``: v1 (``username`` and ``password`` when
    the server has auth enabled; the database is created if missing and the user may) or v2 (``database`` is the
    bucket; ``token`` and ``org`` are required)."""
    if detect_api(url) == "v1":
        sink = InfluxV1Sink(url, database, username, password)
        sink.ensure_database()
        return sink
    if not token or not org:
        raise SinkRejectedError(f"{url} speaks the InfluxDB v2 API: give a token and an organisation")
    return InfluxV2Sink(url, org=org, bucket=database, token=token)
