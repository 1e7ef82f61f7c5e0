"""Building blocks of the dashboards: InfluxQL targets, panels, variables, annotations and the grid layout.

Every function returns plain JSON-ready dicts in the shape Grafana 11.3 saves (dashboard schema version 39).
Queries are raw InfluxQL (``rawQuery: true``) so the text in the JSON is exactly the text that runs.

>>> where("fusewatch_score", "asset_id", "run_id")
'FROM "fusewatch_score" WHERE "asset_id" =~ /^$asset$/ AND "run_id" =~ /^$run_id$/ AND $timeFilter'
>>> [step["value"] for step in score_thresholds()["steps"]]
[None, 0.45, 0.8]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.alerts import ASSET_DASHBOARD, AlertPolicyConfig

Json = dict[str, Any]

DATASOURCE_UID = "fusewatch-influxdb"
DATASOURCE: Json = {"type": "influxdb", "uid": DATASOURCE_UID}
FLEET_UID = "fusewatch-fleet"
ASSET_UID = ASSET_DASHBOARD  # the alerts' Grafana links point at it
PIPELINE_UID = "fusewatch-pipeline"
SCHEMA_VERSION = 39  # the dashboard schema of Grafana 11.3
WARNING = AlertPolicyConfig().open_threshold  # an alert opens on windows at or above this score
CRITICAL = AlertPolicyConfig().escalate_threshold  # ... and escalates to critical at this one

# the tag each template variable filters on
VARIABLE_OF_TAG = {"asset_id": "asset", "run_id": "run_id", "group": "group"}


def where(measurement: str, *tags: str, extra: str = "") -> str:
    """``FROM measurement WHERE tag =~ /^$variable$/ AND … AND $timeFilter`` for the given tags."""
    conditions = [f'"{tag}" =~ /^${VARIABLE_OF_TAG[tag]}$/' for tag in tags]
    if extra:
        conditions.append(extra)
    conditions.append("$timeFilter")
    return f'FROM "{measurement}" WHERE ' + " AND ".join(conditions)


def target(ref_id: str, query: str, result_format: str = "time_series", alias: str | None = None) -> Json:
    """A raw InfluxQL query of the fusewatch data source."""
    result: Json = {"datasource": DATASOURCE, "query": query, "rawQuery": True, "refId": ref_id,
                    "resultFormat": result_format}
    if alias is not None:
        result["alias"] = alias
    return result


def score_thresholds() -> Json:
    """Green below the alert threshold, orange from it (warning), red from the escalation threshold."""
    return {"mode": "absolute", "steps": [
        {"color": "green", "value": None}, {"color": "orange", "value": WARNING}, {"color": "red", "value": CRITICAL},
    ]}


def plain_thresholds() -> Json:
    return {"mode": "absolute", "steps": [{"color": "green", "value": None}]}


def asset_link(value: str, title: str = "Open the asset dashboard") -> Json:
    """A data link to the asset drill-down, with the run and the time range of this dashboard."""
    return {"targetBlank": False, "title": title,
            "url": f"/d/{ASSET_UID}/{ASSET_UID}?var-asset={value}&var-run_id=${{run_id}}&${{__url_time_range}}"}


def graph_style(fill: int = 10, stacked: bool = False, thresholds: bool = False, bars: bool = False) -> Json:
    """The ``custom`` field config of a time series panel."""
    return {
        "drawStyle": "bars" if bars else "line", "fillOpacity": fill, "lineWidth": 1, "showPoints": "never",
        "spanNulls": False, "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "dashed+area" if thresholds else "off"},
    }


def panel(
    kind: str, title: str, description: str, targets: Sequence[Json], *, unit: str | None = None,
    minimum: float | None = None, maximum: float | None = None, thresholds: Json | None = None,
    custom: Json | None = None, options: Json | None = None, overrides: Sequence[Json] = (),
    transformations: Sequence[Json] = (), decimals: int | None = None,
) -> Json:
    """A panel without id and position (``layout`` assigns them)."""
    defaults: Json = {"color": {"mode": "thresholds" if kind in ("table", "stat") else "palette-classic"},
                      "thresholds": thresholds or plain_thresholds()}
    for key, value in (("unit", unit), ("min", minimum), ("max", maximum), ("custom", custom),
                       ("decimals", decimals)):
        if value is not None:
            defaults[key] = value
    result: Json = {
        "datasource": DATASOURCE, "description": description, "fieldConfig": {
            "defaults": defaults, "overrides": list(overrides)},
        "options": options if options is not None else {}, "targets": list(targets), "title": title, "type": kind,
    }
    if transformations:
        result["transformations"] = list(transformations)
    return result


def timeseries(title: str, description: str, targets: Sequence[Json], *, legend: str = "list",
               **kwargs: Any) -> Json:
    options = {"legend": {"calcs": ["lastNotNull", "max"] if legend == "table" else [], "displayMode": legend,
                          "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    kwargs.setdefault("custom", graph_style())
    return panel("timeseries", title, description, targets, options=options, **kwargs)


def stat(title: str, description: str, targets: Sequence[Json], **kwargs: Any) -> Json:
    options = {"colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
               "percentChangeColorMode": "standard", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                                                      "values": False},
               "showPercentChange": False, "textMode": "auto", "wideLayout": True}
    return panel("stat", title, description, targets, options=options, **kwargs)


def table(title: str, description: str, targets: Sequence[Json], *, sort_by: str | None = None,
          **kwargs: Any) -> Json:
    options: Json = {"cellHeight": "sm", "footer": {"countRows": False, "reducer": ["sum"], "show": False},
                     "frameIndex": 0, "showHeader": True}
    if sort_by is not None:
        options["sortBy"] = [{"desc": True, "displayName": sort_by}]
    kwargs.setdefault("custom", {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False})
    return panel("table", title, description, targets, options=options, **kwargs)


def state_timeline(title: str, description: str, targets: Sequence[Json], **kwargs: Any) -> Json:
    options = {"alignValue": "left",
               "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
               "mergeValues": True, "rowHeight": 0.8, "showValue": "auto",
               "tooltip": {"mode": "single", "sort": "none"}}
    kwargs.setdefault("custom", {"fillOpacity": 70, "lineWidth": 0})
    return panel("state-timeline", title, description, targets, options=options, **kwargs)


def bar_chart(title: str, description: str, targets: Sequence[Json], *, x_field: str, **kwargs: Any) -> Json:
    options = {"barWidth": 0.8, "fullHighlight": False, "groupWidth": 0.7,
               "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
               "orientation": "horizontal", "showValue": "auto", "stacking": "normal",
               "tooltip": {"mode": "multi", "sort": "desc"}, "xField": x_field, "xTickLabelMaxLength": 0,
               "xTickLabelRotation": 0}
    kwargs.setdefault("custom", {"fillOpacity": 80, "lineWidth": 1})
    return panel("barchart", title, description, targets, options=options, **kwargs)


def field_override(name: str, properties: Json, matcher: str = "byName") -> Json:
    """Field config for the fields ``matcher`` selects: the field called ``name`` (or of type ``name``)."""
    return {"matcher": {"id": matcher, "options": name},
            "properties": [{"id": key, "value": value} for key, value in properties.items()]}


def layout(rows: Sequence[Sequence[tuple[Json, int, int]]]) -> list[Json]:
    """Number the panels 1, 2, … and place each row of ``(panel, width, height)`` below the previous one.

    >>> placed = layout([[({"title": "a"}, 12, 8), ({"title": "b"}, 12, 8)], [({"title": "c"}, 24, 4)]])
    >>> [(p["id"], p["gridPos"]) for p in placed]  # doctest: +NORMALIZE_WHITESPACE
    [(1, {'h': 8, 'w': 12, 'x': 0, 'y': 0}), (2, {'h': 8, 'w': 12, 'x': 12, 'y': 0}),
     (3, {'h': 4, 'w': 24, 'x': 0, 'y': 8})]
    """
    panels: list[Json] = []
    y = 0
    for row in rows:
        x = 0
        for item, width, height in row:
            if x + width > 24:
                raise ValueError(f"row at y={y} is wider than the 24 grid columns")
            panels.append({**item, "id": len(panels) + 1, "gridPos": {"h": height, "w": width, "x": x, "y": y}})
            x += width
        y += max(height for _, _, height in row)
    return panels


def query_variable(name: str, label: str, query: str, description: str, *, current: str | None = None,
                   include_all: bool = False) -> Json:
    """A template variable filled from an InfluxQL ``SHOW TAG VALUES`` query, refreshed on time-range change."""
    variable: Json = {
        "datasource": DATASOURCE, "description": description, "hide": 0, "includeAll": include_all,
        "label": label, "multi": include_all, "name": name, "options": [], "query": query, "refresh": 2,
        "regex": "", "skipUrlSync": False, "sort": 1, "type": "query",
    }
    if current is not None:
        variable["current"] = {"selected": True, "text": current, "value": current}
    elif include_all:
        variable["current"] = {"selected": True, "text": "All", "value": "$__all"}
    return variable


def tag_values(measurement: str, key: str) -> str:
    return f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"'


def annotation(name: str, colour: str, query: str, text_column: str, tags_column: str) -> Json:
    """An InfluxQL annotation in the target form Grafana 11 saves (``fromAnnotations``, column names).

    ``limit``, ``matchAny``, ``tags`` and ``type`` are required by the dashboard schema's annotation target
    (they belong to Grafana's built-in annotations); the InfluxDB data source ignores them.
    """
    return {
        "datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": colour, "name": name,
        "target": {"fromAnnotations": True, "limit": 100, "matchAny": False, "name": name, "query": query,
                   "queryType": "tags", "tags": [], "tagsColumn": tags_column, "textColumn": text_column,
                   "timeEndColumn": "", "titleColumn": "", "type": "tags"},
    }


def built_in_annotation() -> Json:
    """Grafana's own annotations (the ones users add by hand), as every new dashboard has them."""
    return {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
            "target": {"limit": 100, "matchAny": False, "tags": [], "type": "dashboard"}, "type": "dashboard"}


def dashboard(uid: str, title: str, description: str, panels: list[Json], *, variables: Sequence[Json] = (),
              annotations: Sequence[Json] = (), time_from: str = "now-6h", refresh: str = "1m") -> Json:
    """The dashboard document (without ``id``/``version``: Grafana assigns those on import)."""
    return {
        "annotations": {"list": [built_in_annotation(), *annotations]},
        "description": description, "editable": False, "fiscalYearStartMonth": 0, "graphTooltip": 1,
        "links": [{"asDropdown": True, "icon": "external link", "includeVars": False, "keepTime": True,
                   "tags": ["fusewatch"], "targetBlank": False, "title": "fusewatch", "tooltip": "",
                   "type": "dashboards", "url": ""}],
        "panels": panels, "refresh": refresh, "schemaVersion": SCHEMA_VERSION, "tags": ["fusewatch"],
        "templating": {"list": list(variables)}, "time": {"from": time_from, "to": "now"},
        "timepicker": {}, "timezone": "browser", "title": title, "uid": uid, "weekStart": "",
    }
