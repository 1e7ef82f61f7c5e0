"""The ``nestor`` scenario: the maintenance-log text model on 5,485 real excavator work orders (docs/datasets.md).

The orders stream in date order and every model is scored *prequentially*: it predicts an order's label from
the text, then learns the true label (test-then-train), so each prediction is made on an order it has not seen.
Two targets fit what a maintenance log can tell:

* **major system** — which subsystem the order is about (the experts' ``MajorSystem``: 36 values, combinations
  such as ``Engine_Hydraulic System`` included, and ``none`` when they named none — 44 % of the orders, about
  the cab, radio, air conditioning, grease lines ...);
* **category** — ``routine`` or ``failure`` (:func:`connectors.sources.datasets.nestor.category_of`; 9.8 % routine).

:class:`WorkOrderClassifier` learns each target. Baselines: the majority label so far (both targets), and for
the category the lexicon rules of :mod:`models.text` without any learning — :func:`infer_kind` (``failure``,
``symptom`` and ``repair`` read as failure: in a work order a repair or replacement is the corrective action
for a failed part) and :func:`lexicon_severity` as a score. The ``logs`` row holds the failure category's ROC
and PR AUC from the classifier's prequential score, its accuracy overall and over the last half, and the
baselines' figures; ``details`` holds both targets in full. With ``out_dir``, ``nestor_prequential.png``
shows the running accuracies. Nothing is random: the seed is only recorded.

The expert labels were themselves produced by keyword rules over these texts (Hodkiewicz & Ho 2016), so a
text model can in principle learn them exactly; the scenario measures how fast it does so from a stream.

>>> running_accuracy([True, False, True, True])
[1.0, 0.5, 0.6667, 0.75]
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from connectors.sources.datasets.nestor import WorkOrder, load_work_orders
from fusewatch.evaluation.metrics import pr_auc, roc_auc
from fusewatch.scenarios.summary import ScenarioSummary
from models.text import WorkOrderClassifier, infer_kind, lexicon_severity, normalize_log_text

PLOT_NAME = "nestor_prequential.png"
FAILURE_KINDS = frozenset({"failure", "symptom", "repair"})
TARGETS: dict[str, Callable[[WorkOrder], str]] = {
    "major_system": lambda order: order.labels.get("MajorSystem", "none"),
    "category": lambda order: order.category,
}


def run(seed: int = 0, out_dir: Path | None = None, progress: bool = True) -> ScenarioSummary:
    """Run the scenario on the pinned nestor wheel (fetched on first use); see the module docstring."""
    started = time.perf_counter()
    orders = load_work_orders()
    truth = {target: [label(order) for order in orders] for target, label in TARGETS.items()}
    models = {target: WorkOrderClassifier(positive="failure") for target in TARGETS}
    majority = {target: Counter[str]() for target in TARGETS}
    hits: dict[str, dict[str, list[bool]]] = {target: {"model": [], "majority": []} for target in TARGETS}
    hits["category"]["lexicon"] = []
    failure_scores: list[float] = []
    lexicon_scores: list[float] = []
    for index, order in enumerate(tqdm(orders, desc="nestor work orders", unit="order", disable=not progress)):
        for target, model in models.items():
            label = truth[target][index]
            seen = majority[target].most_common(1)
            hits[target]["model"].append(model.predict_one(order.text) == label)
            hits[target]["majority"].append(bool(seen) and seen[0][0] == label)
            if target == "category":
                failure_scores.append(model.score_one(order.text))
            model.learn_one(order.text, label)
            majority[target][label] += 1
        kind = infer_kind(order.text)
        hits["category"]["lexicon"].append(("failure" if kind in FAILURE_KINDS else "routine") == order.category)
        lexicon_scores.append(lexicon_severity(normalize_log_text(order.text)))

    failed = [label == "failure" for label in truth["category"]]
    accuracy = {target: {name: _accuracy(flags) for name, flags in by_model.items()}
                for target, by_model in hits.items()}
    category, system = accuracy["category"], accuracy["major_system"]
    summary = ScenarioSummary("nestor", seed=seed)
    summary.add_row(
        "logs", roc_auc=roc_auc(failed, failure_scores), pr_auc=pr_auc(failed, failure_scores),
        prequential_accuracy=category["model"]["overall"],
        prequential_accuracy_last_half=category["model"]["last_half"],
        majority_accuracy=category["majority"]["overall"], lexicon_accuracy=category["lexicon"]["overall"],
        lexicon_roc_auc=roc_auc(failed, lexicon_scores), lexicon_pr_auc=pr_auc(failed, lexicon_scores),
        major_system_accuracy=system["model"]["overall"], major_system_accuracy_last_half=system["model"]["last_half"],
        major_system_majority_accuracy=system["majority"]["overall"], orders=len(orders),
    )
    summary.details.update({
        "orders": len(orders),
        "first_date": str(orders[0].date), "last_date": str(orders[-1].date),
        "accuracy": accuracy,
        "classes": {target: dict(Counter(labels).most_common()) for target, labels in truth.items()},
        "failure_share": round(sum(failed) / len(failed), 4),
        "routine_pr_auc": _round(pr_auc([not f for f in failed], [-s for s in failure_scores])),
        "lexicon_failure_kinds": sorted(FAILURE_KINDS),
    })
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_running_accuracy(hits, out_dir / PLOT_NAME)
        summary.plots.append(PLOT_NAME)
    summary.details["wall_seconds"] = round(time.perf_counter() - started, 2)
    return summary


def running_accuracy(hits: Sequence[bool]) -> list[float]:
    """The share of hits among the first 1, 2, ... predictions (rounded to 4 places)."""
    total, out = 0, []
    for seen, hit in enumerate(hits, start=1):
        total += hit
        out.append(round(total / seen, 4))
    return out


def plot_running_accuracy(hits: dict[str, dict[str, list[bool]]], path: Path) -> None:
    """Running prequential accuracy against orders seen, one panel per target, the model against the baselines."""
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, attached explicitly: no pyplot, no global backend
    axes = fig.subplots(len(hits), 1, sharex=True)
    styles = {"model": ("black", "WorkOrderClassifier"), "majority": ("tab:blue", "majority so far"),
              "lexicon": ("tab:red", "lexicon rules (infer_kind)")}
    for ax, (target, by_model) in zip(axes, hits.items(), strict=True):
        for name, flags in by_model.items():
            colour, label = styles[name]
            curve = running_accuracy(flags)
            ax.plot(range(1, len(curve) + 1), curve, color=colour, linewidth=1.0, label=f"{label}: {curve[-1]:.3f}")
        ax.axvline(len(next(iter(by_model.values()))) / 2, color="0.6", linestyle=":", linewidth=0.8)
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("running accuracy")
        ax.set_title(f"{target.replace('_', ' ')}: prequential (test-then-train) accuracy in date order", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    axes[-1].set_xlabel("work orders seen (NIST nestor excavators, 2001–2012); dotted: start of the last half")
    fig.savefig(path, format="png", dpi=100)


def _accuracy(flags: Sequence[bool]) -> dict[str, float]:
    half = len(flags) // 2
    return {"overall": round(sum(flags) / len(flags), 4),
            "last_half": round(sum(flags[half:]) / (len(flags) - half), 4)}


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
