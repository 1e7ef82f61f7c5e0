"""The local InfluxDB server as the benchmarks use it: InfluxQL statements on the v1 API, and a poller that notes
when each score point first becomes visible (the latency benchmark)."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

INFLUX = os.environ.get("FUSEWATCH_BENCH_INFLUX", "http://127.0.0.1:8086")
POLL_S = 0.075


def influx_query(statement: str, database: str = "") -> dict[str, Any]:
    """One InfluxQL statement on the v1 API (``epoch=ns``); its first result. Errors raise."""
    params = {"q": statement, "epoch": "ns", **({"db": database} if database else {})}
    url = urllib.parse.urlsplit(INFLUX)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 8086, timeout=30)
    try:
        connection.request("POST", "/query", urllib.parse.urlencode(params),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        body = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    result: dict[str, Any] = body["results"][0]
    if "error" in result:
        raise RuntimeError(f"InfluxDB: {result['error']} (in {statement!r})")
    return result


@dataclass
class InfluxPoller:
    """Polls ``fusewatch_score`` every ``interval_s`` and records when each (asset, window end) first appears.

    Only window ends from the oldest one not yet complete (fewer than ``assets`` points) are asked for, so a poll
    returns a few hundred rows, not the whole run.
    """

    database: str
    assets: int
    first_end_ns: int
    window_ns: int
    interval_s: float = POLL_S
    seen: dict[tuple[str, int], float] = field(default_factory=dict)
    polls: int = 0
    query_s: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="influx-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _oldest_incomplete(self) -> int:
        counts: dict[int, int] = {}
        for _, end in self.seen:
            counts[end] = counts.get(end, 0) + 1
        end = self.first_end_ns
        while counts.get(end, 0) >= self.assets:
            end += self.window_ns
        return end

    def _run(self) -> None:
        url = urllib.parse.urlsplit(INFLUX)
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 8086, timeout=30)
        try:
            while not self._stop.is_set():
                started = time.time()
                statement = f"SELECT fused, asset_id FROM fusewatch_score WHERE time >= {self._oldest_incomplete()}"
                connection.request("POST", "/query", urllib.parse.urlencode(
                    {"q": statement, "db": self.database, "epoch": "ns"}),
                    {"Content-Type": "application/x-www-form-urlencoded"})
                body = json.loads(connection.getresponse().read())
                self.query_s.append(time.time() - started)
                self.polls += 1
                for series in body["results"][0].get("series", []):
                    for end, _, asset in series["values"]:
                        self.seen.setdefault((asset, int(end)), started)
                self._stop.wait(max(0.0, self.interval_s - (time.time() - started)))
        except BaseException as exc:  # reported by the benchmark
            self.error = exc
        finally:
            connection.close()
