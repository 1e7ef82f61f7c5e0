"""Two InfluxDB backends behind one interface: the v1 ``/write`` API and the v2 API through influxdb-client.

Both write synchronously, in gzip-compressed batches of at most ``batch_lines`` lines, and raise instead of
dropping: :class:`~fusewatch.core.errors.SinkUnavailableError` (server down, 5xx, 429: retry later, the caller keeps
the points and does not commit its offsets) or :class:`~fusewatch.core.errors.SinkRejectedError` (4xx: the data
itself is refused). influxdb-client's default batching ``WriteApi`` is not used: it returns before the write,
drops batches after its retry time and loses its buffer on a crash.
"""

from __future__ import annotations

import gzip
import http.client
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from fusewatch.core.errors import SinkRejectedError, SinkUnavailableError


class InfluxSink(Protocol):
    """Where points go: ``write`` returns only once the server has stored every line."""

    def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...


def _batches(lines: Sequence[str], size: int) -> Iterator[bytes]:
    for start in range(0, len(lines), size):
        yield "\n".join(lines[start : start + size]).encode()


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


class InfluxV1Sink:
    """InfluxDB 1.x: ``POST /write?db=DATABASE&precision=ns`` with a gzip body (user and password optional)."""

    def __init__(
        self, url: str, database: str, username: str | None = None, password: str | None = None,
        retention_policy: str | None = None, batch_lines: int = 5000, timeout_s: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url}: an InfluxDB URL is http(s)://host[:port]")
        query = {"db": database, "precision": "ns"}
        if retention_policy:
            query["rp"] = retention_policy
        if username:
            query.update(u=username, p=password or "")
        self._path = "/write?" + urllib.parse.urlencode(query)
        self.batch_lines = batch_lines
        self.timeout_s = timeout_s
        self.url = url
        self.database = database

    def write(self, lines: Sequence[str]) -> None:
        """Write every line (in batches); raises rather than losing any."""
        for body in _batches(lines, self.batch_lines):
            answer = _request(self.url, "POST", self._path, gzip.compress(body, compresslevel=5), {
                "Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}, self.timeout_s)
            if answer.status == 204:
                continue
            if answer.status == 429 or answer.status >= 500:
                raise SinkUnavailableError(f"InfluxDB at {self.url} answered {answer.status}: {answer.detail}",
                                           _retry_after(answer.retry_after, 1.0))
            raise SinkRejectedError(f"InfluxDB at {self.url} refused the points ({answer.status}): {answer.detail}")

    def ensure_database(self) -> None:
        """Create the database if it does not exist (``CREATE DATABASE`` is idempotent in InfluxQL)."""
        query = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.database}"'}).encode()
        answer = _request(self.url, "POST", "/query", query,
                          {"Content-Type": "application/x-www-form-urlencoded"}, self.timeout_s)
        if answer.status != 200 or '"error"' in answer.detail:
            raise SinkRejectedError(f"InfluxDB at {self.url} could not create {self.database}: {answer.detail}")

    def close(self) -> None:
        """Nothing is held open between writes."""


class InfluxV2Sink:
    """InfluxDB 2.x/3.x (and 1.8+ compatibility): influxdb-client's synchronous write API, gzip on."""

    def __init__(self, url: str, org: str, bucket: str, token: str, batch_lines: int = 5000,
                 timeout_s: float = 10.0) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url, self.org, self.bucket = url, org, bucket
        self.batch_lines = batch_lines
        self._client = InfluxDBClient(url=url, token=token, org=org, enable_gzip=True,
                                      timeout=int(timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: Sequence[str]) -> None:
        """Write every line (in batches); raises rather than losing any."""
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        for start in range(0, len(lines), self.batch_lines):
            batch = list(lines[start : start + self.batch_lines])
            try:
                self._api.write(bucket=self.bucket, org=self.org, record=batch,
                                write_precision=WritePrecision.NS)  # type: ignore[arg-type]  # a str-valued enum
            except ApiException as exc:
                status = int(exc.status or 0)
                if status == 429 or status >= 500:
                    headers: dict[str, str] = dict(exc.headers or {})
                    retry = _retry_after(headers.get("Retry-After"), 1.0)
                    raise SinkUnavailableError(f"InfluxDB at {self.url} answered {status}", retry) from exc
                raise SinkRejectedError(f"InfluxDB at {self.url} refused the points ({status}): {exc.body}") from exc
            except (HTTPError, OSError) as exc:
                raise SinkUnavailableError(f"InfluxDB at {self.url} is unreachable: {exc}") from exc

    def close(self) -> None:
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


def open_sink(url: str, database: str = "fusewatch", token: str | None = None, org: str | None = None) -> InfluxSink:
    """A sink for the server at ``url``, its API detected from ``/ping``: v1 (the database is created if
    missing) or v2 (``database`` is the bucket; ``token`` and ``org`` are required)."""
    if detect_api(url) == "v1":
        sink = InfluxV1Sink(url, database)
        sink.ensure_database()
        return sink
    if not token or not org:
        raise SinkRejectedError(f"{url} speaks the InfluxDB v2 API: give a token and an organisation")
    return InfluxV2Sink(url, org=org, bucket=database, token=token)
