"""The InfluxDB v1 sink against raw line-protocol POSTs of the same batches, on the local InfluxDB server.

The points are the score and feature lines of a simulated run (made before the clock starts). Each condition
writes all of them, in batches of 5,000 lines, into a database of its own (created before, dropped after):
`sink` is `InfluxV1Sink` (joins the lines, gzips each batch, POSTs, checks the answer); `raw gzip` POSTs the
same gzip-compressed batches with `http.client` and nothing else; `raw` POSTs them uncompressed. The conditions
run interleaved, several times; the ratio is sink ÷ raw gzip (the same bytes on the wire).
"""

from __future__ import annotations

import gzip
import http.client
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.influxdb import INFLUX, influx_query
from benchmarks.run import method_text, stat
from connectors.sinks.influx.points import features_line, score_line
from connectors.sinks.influx.writers import InfluxV1Sink
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.codec import encode
from fusewatch.core.topics import Topics
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner
from streams.settings import StreamSettings

BATCH = 5000
GOAL = 0.8


def lines_of_a_run(assets: int, days: float) -> list[str]:
    plant = PlantSimulator(SimulatorConfig(assets=assets, days=days, seed=0, sample_rate_hz=2560.0))
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(StreamSettings(), output, assets=plant.asset_registry()))
    topics = Topics()
    for step in plant.steps():
        for event in step:
            runner.publish(topics.for_event(event), event.asset_id.encode(), encode(event), event.ts)
        runner.pump()
    runner.finish()
    lines = [score_line(s.score) for s in output.scored]
    return lines + [line for s in output.scored if (line := features_line(s.score))]


def _post(path: str, body: bytes, headers: dict[str, str], expected: int) -> None:
    url = urllib.parse.urlsplit(INFLUX)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 8086, timeout=30)
    try:
        connection.request("POST", path, body, headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != expected:
            raise RuntimeError(f"InfluxDB answered {answer.status} to POST {path}")
    finally:
        connection.close()


def _raw(lines: list[str], database: str, compress: bool) -> None:
    path = "/write?" + urllib.parse.urlencode({"db": database, "precision": "ns"})
    for start in range(0, len(lines), BATCH):
        body = "\n".join(lines[start : start + BATCH]).encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if compress:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        _post(path, body, headers, 204)


CONDITIONS: dict[str, Callable[[list[str], str], None]] = {
    "sink": lambda lines, database: InfluxV1Sink(INFLUX, database, batch_lines=BATCH).write(lines),
    "raw gzip": lambda lines, database: _raw(lines, database, True),
    "raw": lambda lines, database: _raw(lines, database, False),
}


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    assets, days, repetitions = (2, 0.1, 2) if quick else (6, 1.0, 5)
    log(f"[sink] scoring {assets} assets x {days:g} day for the points")
    lines = lines_of_a_run(assets, days)
    log(f"[sink] {len(lines)} lines, {sum(map(len, lines)) / 1e6:.1f} MB")
    rates: dict[str, list[float]] = {name: [] for name in CONDITIONS}
    names = list(CONDITIONS)
    for repetition in range(repetitions):
        for name in names[repetition % len(names):] + names[: repetition % len(names)]:
            database = f"fwbench_{uuid.uuid4().hex[:8]}"
            influx_query(f'CREATE DATABASE "{database}"')
            try:
                started = time.perf_counter()
                CONDITIONS[name](lines, database)
                rates[name].append(len(lines) / (time.perf_counter() - started))
            finally:
                influx_query(f'DROP DATABASE "{database}"')
            log(f"[sink] {name}, repetition {repetition + 1}: {rates[name][-1]:.0f} points/s")
    ratio = stat((s / r for s, r in zip(rates["sink"], rates["raw gzip"], strict=True)), 3)
    headline = stat(rates["sink"], 0)["median"] / stat(rates["raw gzip"], 0)["median"]
    return {
        "title": "InfluxDB v1 sink against raw line-protocol POSTs",
        "method": method_text(__doc__),
        "goal": {"text": f"sink points/s ≥ {GOAL:g} × raw POSTs of the same batches", "met": headline >= GOAL,
                 "value": f"sink / raw gzip = {headline:.3f} (per repetition {ratio['min']:.3f}–{ratio['max']:.3f})"},
        "parameters": {"points": len(lines), "batch_lines": BATCH, "repetitions": repetitions, "server": INFLUX,
                       "run": f"{assets} assets x {days:g} day (scores and vibration features)"},
        "tables": [{"caption": "Points per second (median (min–max))", "columns": ["condition", "points/s"],
                    "rows": [[name, stat(values, 0)] for name, values in rates.items()]}],
        "figures": {"points_per_s": {name: stat(values, 0) for name, values in rates.items()},
                    "sink_over_raw_gzip": ratio},
        "notes": [],
    }
