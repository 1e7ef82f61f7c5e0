"""Every query of every generated dashboard, run against the real InfluxDB 1.6.7 over a simulated run.

No Grafana server runs on this machine, so the macros are substituted here as Grafana 11's InfluxQL data source
does: ``$timeFilter`` → ``time >= <from>ms and time <= <to>ms``, ``$__interval`` → an interval, template variables
→ their value regex-escaped (``escapeRegex`` of @grafana/data; a multi-value "All" → ``(a|b)``). Each panel
target, annotation and template-variable query must return at least one series with a non-null value.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest

from connectors.grafana.dashboards import dashboards
from connectors.sinks.influx.points import PipelineHealth, alert_line, features_line, health_line, log_line, score_line
from connectors.sinks.influx.writers import InfluxV1Sink
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.config import FusewatchConfig
from fusewatch.core.codec import encode
from fusewatch.core.events import MaintenanceLog
from fusewatch.core.topics import Topics
from streams.alerts import AlertPolicyConfig
from streams.model_config import ModelConfig
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner
from tests.integration.conftest import InfluxV1

pytestmark = pytest.mark.integration

GROUP = "fusewatch-sink"
RUN_ID = "live"  # the processor's default run, as the Kafka workers write it


@functools.lru_cache(maxsize=1)
def simulated_run() -> tuple[tuple[str, ...], tuple[str, ...], int, int]:
    """Line protocol of a scored two-asset run: lines, assets with alerts and logs, first and last time (ns).

    Faults are compressed into 1.3 days (seed 2: a leak and a winding fault), the models warm up for 240 windows
    and the alert policy is sensitive, so both assets have alert transitions and maintenance-log entries.
    """
    plant = PlantSimulator(SimulatorConfig(
        assets=2, days=1.3, seed=2, fault_free_days=0.25, min_fault_days=0.3, max_fault_days=0.6,
        min_downtime_hours=1.0, max_downtime_hours=2.0, sample_rate_hz=12_800.0))
    config = FusewatchConfig(models=ModelConfig(warmup_windows=240), alerts=AlertPolicyConfig(
        open_threshold=0.02, open_k=1, open_n=1, escalate_threshold=0.05, escalate_k=1, close_threshold=0.01,
        close_windows=20, cooldown_s=600))
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(config.streams, output, assets=plant.asset_registry()))
    topics = Topics()
    logs: list[MaintenanceLog] = []
    for event in plant.events():
        if isinstance(event, MaintenanceLog):
            logs.append(event)
        runner.publish(topics.for_event(event), event.asset_id.encode(), encode(event), event.ts)
        runner.pump()
    runner.finish()
    scores = [s.score for s in output.scored]
    lines = [score_line(s) for s in scores]
    lines += [line for s in scores if (line := features_line(s))]
    lines += [alert_line(a) for a in output.alerts]
    lines += [log_line(entry) for entry in logs]
    first, last = scores[0].window_end, scores[-1].window_end
    for i in range(12):  # sink health reports every 10 s, inside the run's time range
        health = PipelineHealth(10.0, 100 + i, i % 2, i % 3, 200 + 2 * i, 2.5 + i / 10, i, 2 * i, i % 4,
                                vibration_lag_s=30.0 + i, camera_lag_s=float(i), logs_lag_s=3600.0, workers=2,
                                held_bytes=i << 20, paused_inputs=i % 2)
        lines.append(health_line(health, GROUP, last - (12 - i) * 10_000_000_000))
    both = {a.asset_id for a in output.alerts} & {entry.asset_id for entry in logs}
    return tuple(lines), tuple(sorted(both)), first, last


def escape_regex(value: str) -> str:
    """``escapeRegex`` of @grafana/data, which the InfluxDB data source applies to variables inside /…/."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m[0], value)


def interpolate(query: str, variables: dict[str, list[str]], from_ms: int, to_ms: int) -> str:
    text = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    text = text.replace("$__interval", "1m")
    for name, values in sorted(variables.items(), key=lambda item: -len(item[0])):
        value = escape_regex(values[0]) if len(values) == 1 else "(" + "|".join(map(escape_regex, values)) + ")"
        text = text.replace(f"${{{name}}}", value).replace(f"${name}", value)
    leftover = re.findall(r"\$\{?[A-Za-z_]\w*", text)
    assert not leftover, f"unsubstituted macros {leftover} in {text!r}"
    return text


def non_null_rows(result: dict[str, Any]) -> int:
    """Rows with at least one non-null value besides the time column, over every series of one result."""
    rows = 0
    for series in result.get("series", []):
        columns = series["columns"]
        rows += sum(1 for row in series["values"]
                    if any(v is not None for c, v in zip(columns, row, strict=True) if c != "time"))
    return rows


def queries() -> list[tuple[str, str, str]]:
    """``(dashboard uid, panel or annotation title, query)`` of every target and annotation."""
    found = []
    for document in dashboards():
        for panel in document["panels"]:
            found += [(document["uid"], f"{panel['title']} [{t['refId']}]", t["query"]) for t in panel["targets"]]
        for annotation in document["annotations"]["list"]:
            if "query" in annotation.get("target", {}):
                found.append((document["uid"], f"annotation: {annotation['name']}", annotation["target"]["query"]))
    return found


def test_every_dashboard_query_returns_data(influxdb: InfluxV1, capsys: pytest.CaptureFixture[str]) -> None:
    lines, assets, first, last = simulated_run()
    assert assets, "the simulated run should give an asset with both alert transitions and log entries"
    InfluxV1Sink(influxdb.url, influxdb.database, batch_lines=2000).write(list(lines))
    from_ms, to_ms = first // 1_000_000 - 3_600_000, last // 1_000_000 + 60_000
    variables = {"asset": [assets[0]], "run_id": [RUN_ID], "group": [GROUP]}
    report = []
    empty = []
    for uid, title, query in queries():
        statement = interpolate(query, variables, from_ms, to_ms)
        (result,) = influxdb.query(statement)
        rows = non_null_rows(result)
        report.append(f"{uid:<20} {title:<62} rows={rows}")
        if rows == 0:
            empty.append(f"{uid}: {title}: {statement}")
    with capsys.disabled():
        print("\n" + "\n".join(report))
    assert len(report) == len(queries()) > 20
    assert empty == []


def test_the_pipeline_dashboard_with_several_groups_selected(influxdb: InfluxV1) -> None:
    health = PipelineHealth(10.0, 50, 0, 1, 100, 1.5, 3, 4, 0)
    influxdb.write("\n".join(health_line(health, group, 10_000_000_000 * i)
                             for i, group in enumerate(["fusewatch-sink", "sink.b"], start=1)))
    pipeline = next(d for d in dashboards() if d["uid"] == "fusewatch-pipeline")
    lag = next(p for p in pipeline["panels"] if p["title"] == "Lag")["targets"][0]["query"]
    statement = interpolate(lag, {"group": ["fusewatch-sink", "sink.b"]}, 0, 60_000)
    assert '/^(fusewatch-sink|sink\\.b)$/' in statement  # the dot is escaped: it must not match "sinkXb"
    (result,) = influxdb.query(statement)
    assert sorted(s["tags"]["group"] for s in result["series"]) == ["fusewatch-sink", "sink.b"]


def test_the_template_variable_queries_list_the_run(influxdb: InfluxV1, capsys: pytest.CaptureFixture[str]) -> None:
    lines, assets, _, _ = simulated_run()
    InfluxV1Sink(influxdb.url, influxdb.database, batch_lines=2000).write(list(lines))
    expected = {"asset": {"pump-01", "motor-02"}, "run_id": {RUN_ID}, "group": {GROUP}}
    seen = []
    for document in dashboards():
        for variable in document["templating"]["list"]:
            (result,) = influxdb.query(variable["query"])
            values = {row[1] for series in result.get("series", []) for row in series["values"]}
            seen.append(f"{document['uid']:<20} ${variable['name']:<8} {sorted(values)}")
            assert values == expected[variable["name"]], variable["query"]
    with capsys.disabled():
        print("\n" + "\n".join(seen))
    assert set(assets) <= expected["asset"]
