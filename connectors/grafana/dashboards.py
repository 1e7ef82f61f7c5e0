"""fusewatch's three Grafana dashboards, generated as code, and the InfluxDB data source they query.

``fleet()``, ``asset()`` and ``pipeline()`` are pure functions returning the dashboard JSON documents; ``export``
writes them, one pretty-printed file per dashboard, to ``deploy/grafana/dashboards`` (docs/grafana.md).

>>> [d["uid"] for d in dashboards()]
['fusewatch-fleet', 'fusewatch-asset', 'fusewatch-pipeline']
>>> slug(asset()["title"])
'fusewatch-asset'
>>> datasource("http://127.0.0.1:8086", "fusewatch")["jsonData"]
{'version': 'InfluxQL', 'dbName': 'fusewatch', 'httpMode': 'POST'}
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from connectors.grafana.panels import (
    ASSET_UID,
    CRITICAL,
    DATASOURCE_UID,
    FLEET_UID,
    PIPELINE_UID,
    WARNING,
    Json,
    annotation,
    asset_link,
    bar_chart,
    dashboard,
    field_override,
    graph_style,
    layout,
    query_variable,
    score_thresholds,
    stat,
    state_timeline,
    table,
    tag_values,
    target,
    timeseries,
    where,
)
from connectors.sinks.influx.points import ALERTS, FEATURES, LOGS, PIPELINE, SCORES
from fusewatch.core.events import MODALITIES

DEFAULT_OUT = Path("deploy/grafana/dashboards")
COLOURED = {"mode": "basic", "type": "color-background"}  # table cells coloured by the thresholds
OPENED = "\"transition\" = 'opened'"
RUN_HELP = "the run_id tag: `live` for the Kafka workers, `demo-seed<N>` for `fusewatch demo`"


def slug(title: str) -> str:
    """The URL slug Grafana derives from a title (lower case; runs of other characters become one ``-``)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _run_variable() -> Json:
    return query_variable("run_id", "run", tag_values(SCORES, "run_id"), RUN_HELP, current="live")


def fleet() -> Json:
    """Every asset at a glance: current score (worst first), scores over time, alert transitions."""
    score_where = where(SCORES, "run_id")
    current = table(
        "Current fused score per asset (worst first)",
        f"Last fused score of each asset in the time range ({SCORES}). Orange from {WARNING} (an alert opens),"
        f" red from {CRITICAL} (critical). Click an asset for its drill-down dashboard.",
        [target("A", f'SELECT last("fused") AS "fused", last("leading") AS "leading" {score_where}'
                     ' GROUP BY "asset_id"', "table")],
        thresholds=score_thresholds(), sort_by="fused", minimum=0, maximum=1, decimals=3,
        overrides=[field_override("fused", {"custom.cellOptions": COLOURED}),
                   field_override("asset_id", {"links": [asset_link("${__value.raw}")]})],
        transformations=[{"id": "merge", "options": {}},
                         {"id": "organize", "options": {"excludeByName": {"Time": True}, "indexByName": {},
                                                        "renameByName": {}}}],
    )
    over_time = timeseries(
        "Fused score per asset",
        f"Highest fused score per interval, one line per asset ({SCORES}); dashed lines at the alert thresholds."
        " Click a line for the asset's dashboard.",
        [target("A", f'SELECT max("fused") {score_where} GROUP BY time($__interval), "asset_id" fill(none)',
                alias="$tag_asset_id")],
        unit="none", minimum=0, maximum=1, thresholds=score_thresholds(), custom=graph_style(thresholds=True),
        overrides=[field_override("number", {"links": [
            asset_link("${__field.labels.asset_id}", "Open the asset dashboard of ${__field.labels.asset_id}")]},
            matcher="byType")],
        legend="table",
    )
    opened = stat(
        "Alerts opened", f"Alert transitions `opened` in the time range ({ALERTS}).",
        [target("A", f'SELECT count("fused") {where(ALERTS, "run_id", extra=OPENED)}')],
        thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}]},
    )
    windows = stat("Windows scored", f"Asset windows scored in the time range ({SCORES}).",
                   [target("A", f'SELECT count("fused") {score_where}')])
    worst = stat(
        "Worst current score", f"The highest of the assets' last fused scores ({SCORES}).",
        [target("A", f'SELECT max("fused") FROM (SELECT last("fused") AS "fused" {score_where} GROUP BY "asset_id")')],
        thresholds=score_thresholds(), decimals=3, minimum=0, maximum=1,
    )
    shares = bar_chart(
        "Mean contribution per modality",
        f"How much each modality contributed to the fused score on average, per asset ({SCORES}); the leading"
        " modality of an asset is its longest bar segment.",
        [target("A", "SELECT " + ", ".join(f'mean("contribution_{m}") AS "{m}"' for m in MODALITIES)
                + f' {score_where} GROUP BY "asset_id"', "table")],
        x_field="asset_id", decimals=3,
        transformations=[{"id": "merge", "options": {}},
                         {"id": "organize", "options": {"excludeByName": {"Time": True}, "indexByName": {},
                                                        "renameByName": {}}}],
    )
    transitions = table(
        "Alert transitions (newest first)",
        f"Alert state changes ({ALERTS}): opened, escalated, closed, acknowledged, suppressed.",
        [target("A", 'SELECT "asset_id", "transition", "severity", "fused", "leading", "text"'
                     f' {where(ALERTS, "run_id")} ORDER BY time DESC LIMIT 200', "table")],
        thresholds=score_thresholds(),
        overrides=[field_override("asset_id", {"links": [asset_link("${__value.raw}")]}),
                   field_override("fused", {"decimals": 3, "custom.cellOptions": COLOURED})],
    )
    panels = layout([
        [(opened, 6, 4), (windows, 6, 4), (worst, 6, 4), (shares, 6, 8)],
        [(current, 8, 10), (over_time, 16, 10)],
        [(transitions, 24, 10)],
    ])
    return dashboard(FLEET_UID, "fusewatch — fleet overview",
                     "Fused anomaly scores of every asset and their alert transitions.", panels,
                     variables=[_run_variable()], time_from="now-24h")


def asset() -> Json:
    """One asset's drill-down; the alert webhooks link here (``var-asset``, ``var-run_id``, ``from``, ``to``)."""
    scores = where(SCORES, "asset_id", "run_id")
    features = where(FEATURES, "asset_id", "run_id")
    grouped = "GROUP BY time($__interval) fill(none)"

    def per_modality(prefix: str, aggregate: str = "mean") -> str:
        return ", ".join(f'{aggregate}("{prefix}_{m}") AS "{m}"' for m in MODALITIES)

    fused = timeseries(
        "Fused score", f"Highest fused score per interval ({SCORES}.fused); dashed lines at {WARNING} (an alert"
        f" opens) and {CRITICAL} (critical). Annotations: alert transitions and maintenance-log entries.",
        [target("A", f'SELECT max("fused") AS "fused" {scores} {grouped}')],
        minimum=0, maximum=1, thresholds=score_thresholds(), custom=graph_style(fill=20, thresholds=True),
    )
    calibrated = timeseries(
        "Calibrated score per modality", f"Each modality's calibrated score in [0, 1] ({SCORES}.calibrated_*);"
        " a gap means the modality had no data in the window.",
        [target("A", f"SELECT {per_modality('calibrated')} {scores} {grouped}")], minimum=0, maximum=1,
    )
    contributions = timeseries(
        "Contributions to the fused score", f"Stacked: the modalities' contributions sum to the fused score"
        f" ({SCORES}.contribution_*).",
        [target("A", f"SELECT {per_modality('contribution')} {scores} {grouped}")],
        minimum=0, custom=graph_style(fill=40, stacked=True),
    )
    shape = timeseries(
        "Vibration: kurtosis and crest factor", f"Impulsiveness of the waveform ({FEATURES}.kurtosis, .crest):"
        " about 3 and 1.4 for Gaussian noise; bearing impacts raise both.",
        [target("A", f'SELECT mean("kurtosis") AS "kurtosis", mean("crest") AS "crest" {features} {grouped}')],
    )
    envelope = timeseries(
        "Vibration: envelope at the bearing defect frequencies", f"Envelope-spectrum peak over the median floor"
        f" (log10) at the outer race, inner race, ball and cage frequencies ({FEATURES}.env_*).",
        [target("A", "SELECT " + ", ".join(f'mean("env_{n}") AS "{n}"' for n in ("bpfo", "bpfi", "bsf", "ftf"))
                + f" {features} {grouped}")],
    )
    level = timeseries(
        "Vibration: RMS and peak", f"Vibration level ({FEATURES}.rms, .peak), in the sensor's unit.",
        [target("A", f'SELECT mean("rms") AS "rms", mean("peak") AS "peak" {features} {grouped}')],
    )
    present = state_timeline(
        "Modalities present", f"Whether each modality had data in the window ({SCORES}.present_*).",
        [target("A", f"SELECT {per_modality('present', 'last')} {scores} {grouped}")],
        overrides=[],
    )
    leading = state_timeline(
        "Leading modality", f"The modality that contributed most to the fused score ({SCORES}.leading).",
        [target("A", f'SELECT last("leading") AS "leading" {scores} {grouped}')],
    )
    log_entries = table(
        "Maintenance log", f"Technicians' entries for this asset ({LOGS}); kind given or inferred from the text.",
        [target("A", f'SELECT "kind", "text", "author" {where(LOGS, "asset_id")} ORDER BY time DESC LIMIT 200',
                "table")],
    )
    alerts = table(
        "Alert transitions", f"This asset's alert state changes ({ALERTS}).",
        [target("A", 'SELECT "transition", "severity", "fused", "leading", "text", "alert_id"'
                     f' {where(ALERTS, "asset_id", "run_id")} ORDER BY time DESC LIMIT 200', "table")],
        thresholds=score_thresholds(),
        overrides=[field_override("fused", {"decimals": 3, "custom.cellOptions": COLOURED})],
    )
    panels = layout([
        [(fused, 24, 8)],
        [(calibrated, 12, 8), (contributions, 12, 8)],
        [(present, 12, 5), (leading, 12, 5)],
        [(shape, 8, 8), (envelope, 8, 8), (level, 8, 8)],
        [(alerts, 12, 8), (log_entries, 12, 8)],
    ])
    annotations = [
        annotation("Alert transitions", "red",
                   f'SELECT "text", "transition" {where(ALERTS, "asset_id", "run_id")}', "text", "transition"),
        annotation("Maintenance log", "blue", f'SELECT "text", "kind" {where(LOGS, "asset_id")}', "text", "kind"),
    ]
    variables = [query_variable("asset", "asset", tag_values(SCORES, "asset_id"), "the asset_id tag"),
                 _run_variable()]
    return dashboard(ASSET_UID, "fusewatch — asset",
                     "One asset: fused and per-modality scores, vibration features, alerts and maintenance log.",
                     panels, variables=variables, annotations=annotations)


def pipeline() -> Json:
    """Throughput, lag, dead letters and write latency of the sink, from ``fusewatch_pipeline``."""
    health = where(PIPELINE, "group")
    by_group = 'GROUP BY time($__interval), "group" fill(none)'

    def series(title: str, description: str, select: str, unit: str | None = None, bars: bool = False) -> Json:
        return timeseries(title, f"{description} ({PIPELINE}).", [target("A", f"SELECT {select} {health} {by_group}",
                                                                         alias="$tag_group $col")],
                          unit=unit, custom=graph_style(fill=60 if bars else 10, bars=bars), minimum=0)

    throughput = series("Throughput", "Scores the sink wrote per second", 'mean("scores_per_s") AS "scores/s"')
    lag = series("Lag", "Input messages the workers have not committed yet (worker) and outputs the sink has"
                 " not committed yet (sink); -1 means unknown",
                 'max("worker_lag") AS "worker", max("sink_lag") AS "sink"')
    dead = series("Dead letters", "Messages that could not be processed, per interval",
                  'sum("dead_letters") AS "dead letters"', bars=True)
    latency = series("Write latency", "Time to write one interval's points to InfluxDB",
                     'mean("write_ms") AS "mean", max("write_ms") AS "max"', unit="ms")
    webhooks = series("Pending webhooks", "Alert deliveries due or being retried",
                      'max("pending_webhooks") AS "pending"')
    points = series("Points written", "Points written to InfluxDB and alerts emitted, per interval",
                    'sum("points") AS "points", sum("alerts") AS "alerts"', bars=True)
    stream_lag = series("Event-time lag per modality", "Per modality, the most any asset's stream is behind that"
                        " asset's newest event, in seconds of event time, from the workers' reports (-1: no worker"
                        " reported). Logs are sparse, so their lag is large in normal operation; a vibration or camera"
                        " lag growing towards [aligner] max_hold_s is a stream that has fallen behind",
                        'max("vibration_lag_s") AS "vibration", max("camera_lag_s") AS "camera", '
                        'max("logs_lag_s") AS "logs"', unit="s")
    held = series("Held by the workers' merges", "Megabytes the workers' event-time merges hold and input"
                  " topic-partitions flow control has paused (budget per partition: [aligner] max_buffered_mb)",
                  'max("held_bytes") / 1048576 AS "held MB", max("paused_inputs") AS "paused inputs"')
    last_rate = stat("Scores per second (last)", f"Latest throughput ({PIPELINE}.scores_per_s).",
                     [target("A", f'SELECT last("scores_per_s") {health}')], decimals=1)
    last_lag = stat("Worker lag (last)", f"Latest worker lag in messages ({PIPELINE}.worker_lag).",
                    [target("A", f'SELECT last("worker_lag") {health}')],
                    thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                              {"color": "orange", "value": 1000},
                                                              {"color": "red", "value": 10000}]})
    dead_total = stat("Dead letters (range)", f"Dead letters in the time range ({PIPELINE}.dead_letters).",
                      [target("A", f'SELECT sum("dead_letters") {health}')],
                      thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                {"color": "red", "value": 1}]})
    panels = layout([
        [(last_rate, 8, 4), (last_lag, 8, 4), (dead_total, 8, 4)],
        [(throughput, 12, 8), (lag, 12, 8)],
        [(latency, 12, 8), (points, 12, 8)],
        [(dead, 12, 8), (webhooks, 12, 8)],
        [(stream_lag, 12, 8), (held, 12, 8)],
    ])
    group = query_variable("group", "sink group", tag_values(PIPELINE, "group"),
                           "the sink's Kafka consumer group", include_all=True)
    return dashboard(PIPELINE_UID, "fusewatch — pipeline health",
                     "Health of the streaming pipeline as the sink reports it every few seconds.", panels,
                     variables=[group], time_from="now-1h", refresh="10s")


def dashboards() -> list[Json]:
    """The three dashboards, in a fixed order."""
    return [fleet(), asset(), pipeline()]


def render(document: Json) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, UTF-8 characters kept, a trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Write ``<uid>.json`` for every dashboard into ``out_dir`` (created if missing); the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for document in dashboards():
        path = out_dir / f"{document['uid']}.json"
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def datasource(
    url: str, database: str, *, token: str | None = None, user: str | None = None, password: str | None = None,
    name: str = DATASOURCE_UID, is_default: bool = True,
) -> Json:
    """The Grafana data source (HTTP API payload) for InfluxQL on ``database`` at ``url``.

    ``token``: InfluxDB 2.x/3.x (DBRP mapping), sent as ``Authorization: Token …``; ``user``/``password``:
    InfluxDB 1.x with authentication. Grafana queries through its server (``access: proxy``), so ``url`` must
    be reachable from the Grafana server.
    """
    payload: Json = {
        "uid": DATASOURCE_UID, "name": name, "type": "influxdb", "access": "proxy", "url": url,
        "database": database, "isDefault": is_default,
        "jsonData": {"version": "InfluxQL", "dbName": database, "httpMode": "POST"},
    }
    secure: dict[str, str] = {}
    if token:
        payload["jsonData"]["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = f"Token {token}"
    if user:
        payload["user"] = user
    if password:
        secure["password"] = password
    if secure:
        payload["secureJsonData"] = secure
    return payload
