"""The generated Grafana dashboards: Grafana's own dashboard schema, structure, and the committed JSON.

The schema is the one of Grafana 11.3 (the version in deploy/compose) as published by Grafana Labs in the PyPI
package ``grafana-foundation-sdk`` ``1769699590!11.3.0``: typed models generated from Grafana's CUE schemas — the
dashboard kind and every core panel's options and field config. ``schema_problems`` decodes a dashboard through
those models and reports, with a JSON path: keys the schema does not know (outside its open objects), required
keys that are missing, values of the wrong type, and values outside an enum.
"""

from __future__ import annotations

import copy
import enum
import inspect
import itertools
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins, runtime, variants
from grafana_foundation_sdk.models import dashboard as schema

from connectors.grafana.dashboards import DEFAULT_OUT, asset, dashboards, datasource, fleet, render, slug
from connectors.grafana.panels import CRITICAL, DATASOURCE, WARNING
from fusewatch.cli import main
from streams.alerts import AlertPolicyConfig

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / DEFAULT_OUT
SDK_VERSION = "1769699590!11.3.0"
# Objects the CUE schema leaves open (``...``): a data source spreads its own query fields into them.
OPEN_MODELS = (schema.AnnotationQuery, schema.AnnotationTarget)

plugins.register_default_plugins()


# ---------------------------------------------------------------------------------------------- the schema check


def _json_keys(cls: Any) -> tuple[dict[str, str], set[str]]:
    """``{json key: attribute}`` of a generated model and the required keys, read from its ``to_json`` source."""
    source = inspect.getsource(cls.to_json)
    required = dict(re.findall(r'^\s+"(\w+)": self\.(\w+),$', source, re.MULTILINE))
    optional = dict(re.findall(r'payload\["(\w+)"\] = self\.(\w+)$', source, re.MULTILINE))
    return {**required, **optional}, set(required)


def _is_model(value: object) -> bool:
    return hasattr(value, "to_json") and hasattr(type(value), "from_json")


def _type_ok(value: object, hint: Any) -> bool:
    """Whether a decoded JSON value (or a decoded model) has the type the schema declares."""
    origin = typing.get_origin(hint)
    if hint is typing.Any or hint is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(_type_ok(k, key) and _type_ok(v, item) for k, v in value.items())
    if value is None:
        return hint is type(None)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {member.value for member in hint} and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _problems(model: object, raw: Any, path: str) -> list[str]:
    """Compare one decoded model with the JSON it was decoded from, then recurse into nested models."""
    if isinstance(model, runtime.UnknownDataquery) or not _is_model(model):
        return []  # panel targets: the schema's ``#Target: {...}`` is open; checked by the structural tests
    cls = type(model)
    keys, required = _json_keys(cls)
    problems = []
    if not isinstance(raw, dict):
        return [f"{path}: expected an object, got {type(raw).__name__}"]
    if not isinstance(model, OPEN_MODELS):
        problems += [f"{path}.{key}: not in the schema of {cls.__name__}" for key in sorted(set(raw) - set(keys))]
    problems += [f"{path}.{key}: required by {cls.__name__}, missing" for key in sorted(required - set(raw))]
    hints = typing.get_type_hints(cls, vars(inspect.getmodule(cls)))
    for key, attribute in keys.items():
        if key not in raw:
            continue
        value, raw_value = getattr(model, attribute), raw[key]
        hint = hints.get(attribute, typing.Any)
        problems += _check(value, raw_value, hint, f"{path}.{key}")
    return problems


def _model_class(hint: Any) -> Any:
    """The generated model class a hint names (through ``Optional``), if it names exactly one."""
    candidates = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) in (
        typing.Union, types.UnionType) else [hint]
    if len(candidates) == 1 and isinstance(candidates[0], type) and hasattr(candidates[0], "from_json"):
        return candidates[0]
    return None


def _list_item(hint: Any) -> Any:
    for candidate in (hint, *typing.get_args(hint)):
        if typing.get_origin(candidate) is list:
            return typing.get_args(candidate)[0]
    return None


def _check(value: Any, raw: Any, hint: Any, path: str) -> list[str]:
    """Check one attribute; models the SDK left undecoded (e.g. a panel's ``links``) are decoded here."""
    if _is_model(value):
        return _problems(value, raw, path)
    item_hint = _list_item(hint)
    if isinstance(value, list) and (any(_is_model(v) for v in value) or _model_class(item_hint)):
        item_class = _model_class(item_hint)
        problems = []
        for index, (item, raw_item) in enumerate(zip(value, raw, strict=True)):
            if not _is_model(item) and item_class is not None and isinstance(item, dict):
                item = item_class.from_json(copy.deepcopy(item))
            problems += _check(item, raw_item, item_hint, f"{path}[{index}]")
        return problems
    if isinstance(value, dict) and any(_is_model(v) for v in value.values()):
        return [p for name, item in value.items() for p in _problems(item, raw[name], f"{path}.{name}")]
    model_class = _model_class(hint)
    if model_class is not None and isinstance(value, dict):
        return _problems(model_class.from_json(copy.deepcopy(value)), raw, path)
    if not _type_ok(value, hint):
        return [f"{path}: {value!r} is not a {hint}"]
    return []


def schema_problems(document: dict[str, Any]) -> list[str]:
    """Everything Grafana 11.3's dashboard schema (with the core panels' schemas) rejects in ``document``."""
    raw = copy.deepcopy(document)
    return _problems(schema.Dashboard.from_json(copy.deepcopy(raw)), raw, "dashboard")


# -------------------------------------------------------------------------------------------------- the tests


def all_panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["panels"])


def test_the_schema_is_grafana_11_3() -> None:
    from importlib.metadata import version

    assert version("grafana-foundation-sdk") == SDK_VERSION
    assert schema.Dashboard().schema_version == 39


@pytest.mark.parametrize("document", dashboards(), ids=lambda d: d["uid"])
def test_each_dashboard_is_valid_against_grafanas_schema(document: dict[str, Any]) -> None:
    assert schema_problems(document) == []


def test_the_schema_check_rejects_what_grafana_would_not_load() -> None:
    broken = copy.deepcopy(asset())
    broken["panels"][0]["gridPos"]["wide"] = 3  # unknown key in a typed object
    broken["panels"][1]["options"]["legend"]["displayMode"] = "huge"  # not in the enum of the timeseries panel
    broken["panels"][2]["fieldConfig"]["defaults"]["custom"]["fillOpacity"] = "lots"  # wrong type
    del broken["annotations"]["list"][1]["iconColor"]  # required
    broken["graphTooltip"] = 7  # not a cursor-sync mode
    broken["templating"]["list"][0]["refresh"] = "sometimes"
    broken["panels"][8]["transformations"] = [{"options": {}}]  # a transformation needs its id
    problems = schema_problems(broken)
    expected = [
        "dashboard.panels[0].gridPos.wide: not in the schema of GridPos",
        "dashboard.panels[1].options.legend.displayMode: 'huge'",
        "dashboard.panels[2].fieldConfig.defaults.custom.fillOpacity: 'lots'",
        "dashboard.annotations.list[1].iconColor: required by AnnotationQuery, missing",
        "dashboard.graphTooltip: 7",
        "dashboard.templating.list[0].refresh: 'sometimes'",
        "dashboard.panels[8].transformations[0].id: required by DataTransformerConfig, missing",
    ]
    for text in expected:
        assert any(problem.startswith(text) for problem in problems), (text, problems)
    assert len(problems) == len(expected), problems


@pytest.mark.parametrize("document", dashboards(), ids=lambda d: d["uid"])
def test_panels_have_unique_ids_and_do_not_overlap(document: dict[str, Any]) -> None:
    panels = all_panels(document)
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        columns, rows = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        for cell in itertools.product(columns, rows):
            assert cell not in cells, f"{p['title']!r} overlaps {cells[cell]!r} at {cell}"
            cells[cell] = p["title"]


@pytest.mark.parametrize("document", dashboards(), ids=lambda d: d["uid"])
def test_every_query_is_raw_influxql_on_the_fusewatch_data_source(document: dict[str, Any]) -> None:
    for p in all_panels(document):
        assert p["datasource"] == DATASOURCE and p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "influxdb", "uid": "fusewatch-influxdb"}, p["title"]
            assert t["rawQuery"] is True and t["query"].startswith("SELECT "), p["title"]
            assert "$timeFilter" in t["query"], p["title"]
            assert t["resultFormat"] in ("time_series", "table")
            if "GROUP BY time(" in t["query"]:
                assert "GROUP BY time($__interval)" in t["query"], p["title"]
    for variable in document["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE and variable["query"].startswith("SHOW TAG VALUES FROM ")
    for annotation in document["annotations"]["list"][1:]:
        assert annotation["datasource"] == DATASOURCE
        assert annotation["target"]["query"].startswith("SELECT ") and "$timeFilter" in annotation["target"]["query"]


def test_uids_titles_and_variables() -> None:
    fleet_doc, asset_doc, pipeline_doc = dashboards()
    assert [d["uid"] for d in (fleet_doc, asset_doc, pipeline_doc)] == [
        "fusewatch-fleet", "fusewatch-asset", "fusewatch-pipeline"]
    # the alert webhooks link to /d/fusewatch-asset/fusewatch-asset?var-asset=…&var-run_id=…&from=…&to=…
    assert slug(asset_doc["title"]) == "fusewatch-asset"
    variables = {v["name"]: v for v in asset_doc["templating"]["list"]}
    assert variables["asset"]["query"] == 'SHOW TAG VALUES FROM "fusewatch_score" WITH KEY = "asset_id"'
    assert variables["run_id"]["current"]["value"] == "live"
    assert [v["name"] for v in fleet_doc["templating"]["list"]] == ["run_id"]
    assert [v["name"] for v in pipeline_doc["templating"]["list"]] == ["group"]
    for p in all_panels(asset_doc):
        for t in p["targets"]:
            assert '"asset_id" =~ /^$asset$/' in t["query"], p["title"]
            if "fusewatch_log" not in t["query"]:  # maintenance-log entries belong to the asset, not to a run
                assert '"run_id" =~ /^$run_id$/' in t["query"], p["title"]
    names = [a["name"] for a in asset_doc["annotations"]["list"]]
    assert names == ["Annotations & Alerts", "Alert transitions", "Maintenance log"]


def test_thresholds_are_the_alert_policy_defaults() -> None:
    policy = AlertPolicyConfig()
    assert (WARNING, CRITICAL) == (policy.open_threshold, policy.escalate_threshold) == (0.45, 0.8)
    current = next(p for p in fleet()["panels"] if p["title"].startswith("Current fused score"))
    steps = current["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == [("green", None), ("orange", 0.45), ("red", 0.8)]
    assert current["options"]["sortBy"] == [{"desc": True, "displayName": "fused"}]
    links = [p["value"] for o in current["fieldConfig"]["overrides"] for p in o["properties"] if p["id"] == "links"]
    assert links and links[0][0]["url"].startswith("/d/fusewatch-asset/fusewatch-asset?var-asset=${__value.raw}")


def test_the_data_source_matches_the_provisioned_one() -> None:
    provisioned = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/influxdb.yml").read_text())
    (entry,) = provisioned["datasources"]
    payload = datasource("http://influxdb:8086", "fusewatch")
    for key in ("uid", "type", "access", "url"):
        assert payload[key] == entry[key], key
    assert payload["jsonData"]["version"] == entry["jsonData"]["version"] == "InfluxQL"
    assert payload["jsonData"]["dbName"] == entry["jsonData"]["dbName"]
    with_token = datasource("http://influxdb:8086", "fusewatch", token="t0k")
    assert with_token["jsonData"]["httpHeaderName1"] == "Authorization"
    assert with_token["secureJsonData"] == {"httpHeaderValue1": "Token t0k"}


def test_the_committed_json_is_what_the_generator_makes() -> None:
    expected = {f"{d['uid']}.json": render(d) for d in dashboards()}
    committed = {p.name: p.read_text(encoding="utf-8") for p in sorted(COMMITTED.glob("*.json"))}
    assert sorted(committed) == sorted(expected), "run `fusewatch grafana export` and commit the files"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} differs from the generator: run `fusewatch grafana export`"
        assert json.loads(text)["uid"] == name.removesuffix(".json")


def test_export_writes_the_same_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dashboards"
    assert main(["grafana", "export", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["fusewatch-asset.json", "fusewatch-fleet.json", "fusewatch-pipeline.json"]
    for name in written:
        assert (out / name).read_bytes() == (COMMITTED / name).read_bytes()
    printed = capsys.readouterr().out
    assert all(name in printed for name in written)
    assert main(["grafana", "export", "--out", str(out)]) == 0  # again: identical bytes, deterministic
    for name in written:
        assert (out / name).read_bytes() == (COMMITTED / name).read_bytes()


def test_variants_registry_knows_the_panels_used() -> None:
    used = {p["type"] for d in dashboards() for p in d["panels"]}
    known = set(runtime.Runtime().panelcfg_variants)
    assert used <= known, used - known  # so their options and field config are checked against their schema
    assert issubclass(runtime.UnknownDataquery, variants.Dataquery)
