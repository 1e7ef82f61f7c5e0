"""The ``elpv`` scenario: the camera model on real electroluminescence images of solar cells (docs/datasets.md).

One :class:`~models.camera.CameraDetector` per cell type (mono- and polycrystalline cells look as different
as two cameras' scenes: poly cells have a grain texture) learns the defect-free cells online, one image at a
time, in a seeded order; a seeded 30 % of the defect-free cells of each type is held out as test negatives,
and every test cell — those held out and all 1,116 with a defect probability above 0 — is scored once
learning is over. Training images are never scored. The ``camera`` row has the ROC and PR AUC against
"defect probability > 0", and AUROC against "probability >= 0.5" and per cell type; ``details`` adds the
AUROC of each probability level (1/3, 2/3, 1) against the test negatives.

Each 300x300 cell is reduced to 64x64 by averaging (the whole cell: the detector's own pooling would crop the
300 pixels to 256) and the detector is configured for these images (see :data:`CONFIG`): a four-layer
encoder (a 4x4x16 bottleneck), brightness relative to the cell's mean (standardising hides the darkness of
an inactive region), the error only where the cell is darker than its reconstruction (defects are dark in
EL images), divided by the running mean error map of learned cells (busbars and edges are always hard), and
20 passes over the training stream (each in a new seeded order; online learning, repeated).

>>> CONFIG.input_size, CONFIG.depth, CONFIG.passes
(64, 4, 20)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from tqdm import tqdm

from connectors.sources.datasets.elpv import ElpvCell, load_elpv
from fusewatch.evaluation.metrics import pr_auc, roc_auc
from fusewatch.scenarios.summary import ScenarioSummary
from models.camera import CameraDetector
from models.camera_options import ErrorKind, Normalization

HEATMAP_PLOT = "elpv_heatmaps.png"
ROC_PLOT = "elpv_roc.png"
CELL_TYPES = ("mono", "poly")
_LEVELS = {"1/3": 1 / 3, "2/3": 2 / 3, "1": 1.0}


@dataclass(frozen=True)
class ElpvConfig:
    """How the scenario trains and scores: detector settings, passes over the training stream, hold-out share."""

    input_size: int = 64
    depth: int = 4
    normalization: Normalization = "gain"
    error: ErrorKind = "darker"
    error_baseline: bool = True
    passes: int = 20
    test_share: float = 0.3
    per_type: bool = True
    learning_rate: float = 3e-3
    batch_size: int = 16


CONFIG = ElpvConfig()


@dataclass
class ElpvResult:
    """Scores of the test cells (``test`` indexes the cell list) with the trained detectors, by cell type."""

    train: list[int]
    test: list[int]
    scores: np.ndarray
    detectors: dict[str, CameraDetector]
    seconds: float
    frames: dict[int, np.ndarray] = field(default_factory=dict)

    def detector_of(self, cell: ElpvCell) -> CameraDetector:
        return self.detectors.get(cell.cell_type) or self.detectors["all"]


def cell_frame(pixels: np.ndarray, size: int) -> np.ndarray:
    """The whole cell averaged down to ``size`` x ``size`` (box filter), as float32.

    >>> cell_frame(np.arange(16, dtype=np.uint8).reshape(4, 4), 2).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    image = Image.fromarray(np.asarray(pixels, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.float32)


def split_cells(cells: list[ElpvCell], seed: int, test_share: float) -> tuple[list[int], list[int]]:
    """Indices to learn (defect-free, ``1 - test_share`` of each type) and to score (the rest), seeded."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test = [i for i, cell in enumerate(cells) if cell.defect_probability > 0]
    for cell_type in CELL_TYPES:
        good = [i for i, cell in enumerate(cells) if cell.defect_probability == 0 and cell.cell_type == cell_type]
        order = [good[j] for j in rng.permutation(len(good))]
        held_out = round(len(good) * test_share)
        test += order[:held_out]
        train += order[held_out:]
    return sorted(train), sorted(test)


def evaluate(cells: list[ElpvCell], seed: int = 0, config: ElpvConfig = CONFIG, progress: bool = False) -> ElpvResult:
    """Learn the training cells online (``config.passes`` seeded passes), then score every test cell."""
    started = time.perf_counter()
    train, test = split_cells(cells, seed, config.test_share)
    frames = {i: cell_frame(cells[i].pixels, config.input_size) for i in (*train, *test)}
    groups = CELL_TYPES if config.per_type else ("all",)
    detectors = {
        group: CameraDetector(
            input_size=config.input_size, batch_size=config.batch_size, learning_rate=config.learning_rate,
            learn_every=1, seed=seed, depth=config.depth, normalization=config.normalization,
            error=config.error, error_baseline=config.error_baseline,
        )
        for group in groups
    }
    order_rng = np.random.default_rng([seed, 1])
    with tqdm(total=config.passes * len(train) + len(test), desc="elpv cells", unit="cell",
              disable=not progress) as bar:
        for group, detector in detectors.items():
            stream = np.array([i for i in train if group in ("all", cells[i].cell_type)])
            for _ in range(config.passes):
                for i in order_rng.permutation(stream):
                    detector.learn_one(frames[int(i)])
                bar.update(len(stream))
        scores = np.empty(len(test))
        for position, i in enumerate(test):
            scores[position] = detectors[cells[i].cell_type if config.per_type else "all"].score_one(frames[i])
            bar.update()
    return ElpvResult(train, test, scores, detectors, time.perf_counter() - started, frames)


def metrics_of(cells: list[ElpvCell], result: ElpvResult) -> dict[str, Any]:
    """AUROC (defect probability > 0, >= 0.5, per type, per level) and PR AUC of the test scores."""
    probability = np.array([cells[i].defect_probability for i in result.test])
    types = np.array([cells[i].cell_type for i in result.test])
    defective = probability > 0
    out: dict[str, Any] = {
        "roc_auc": roc_auc(defective, result.scores),
        "pr_auc": pr_auc(defective, result.scores),
        "roc_auc_ge_0_5": roc_auc(probability >= 0.5, result.scores),
    }
    for cell_type in CELL_TYPES:
        mask = types == cell_type
        out[f"roc_auc_{cell_type}"] = roc_auc(defective[mask], result.scores[mask])
        out[f"pr_auc_{cell_type}"] = pr_auc(defective[mask], result.scores[mask])
    by_level = {}
    for name, level in _LEVELS.items():
        mask = (probability == 0) | np.isclose(probability, level)
        by_level[name] = _round(roc_auc(np.isclose(probability[mask], level), result.scores[mask]))
    out["roc_auc_by_probability"] = by_level
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def run(seed: int = 0, out_dir: Path | None = None, progress: bool = True) -> ScenarioSummary:
    """Run the scenario on the pinned elpv wheel (fetched on first use); see the module docstring."""
    started = time.perf_counter()
    cells = load_elpv()
    result = evaluate(cells, seed=seed, config=CONFIG, progress=progress)
    metrics = metrics_of(cells, result)
    test_cells = [cells[i] for i in result.test]
    summary = ScenarioSummary("elpv", seed=seed)
    summary.add_row(
        "camera", roc_auc=metrics["roc_auc"], pr_auc=metrics["pr_auc"], train=len(result.train),
        test=len(result.test), test_defective=sum(c.defect_probability > 0 for c in test_cells),
        roc_auc_ge_0_5=metrics["roc_auc_ge_0_5"], roc_auc_mono=metrics["roc_auc_mono"],
        roc_auc_poly=metrics["roc_auc_poly"],
    )
    summary.details.update({
        "config": asdict(CONFIG),
        "cells": len(cells),
        "train_by_type": {t: sum(cells[i].cell_type == t for i in result.train) for t in CELL_TYPES},
        "test_good_by_type": {t: sum(c.cell_type == t and c.defect_probability == 0 for c in test_cells)
                              for t in CELL_TYPES},
        "test_defective_by_type": {t: sum(c.cell_type == t and c.defect_probability > 0 for c in test_cells)
                                   for t in CELL_TYPES},
        "pr_auc_mono": _round(metrics["pr_auc_mono"]),
        "pr_auc_poly": _round(metrics["pr_auc_poly"]),
        "roc_auc_by_probability": metrics["roc_auc_by_probability"],
        "model_seconds": round(result.seconds, 1),
        "licence": "CC BY-NC-SA 4.0 (elpv-dataset 1.0.0.post1; citations in docs/datasets.md)",
    })
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_heat_maps(cells, result, out_dir / HEATMAP_PLOT)
        plot_roc(cells, result, out_dir / ROC_PLOT)
        summary.plots += [HEATMAP_PLOT, ROC_PLOT]
    summary.details["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def showcase(cells: list[ElpvCell], result: ElpvResult) -> list[tuple[int, float, str]]:
    """Per cell type, four test cells: the top- and median-scored defective (p = 1) and good ones."""
    chosen: list[tuple[int, float, str]] = []
    for cell_type in CELL_TYPES:
        for label, defective in (("defective", True), ("good", False)):
            pool = [(float(s), i) for s, i in zip(result.scores, result.test, strict=True)
                    if cells[i].cell_type == cell_type and (cells[i].defect_probability == 1.0 if defective
                                                            else cells[i].defect_probability == 0.0)]
            pool.sort(reverse=True)
            if pool:
                for rank, (score, i) in (("top", pool[0]), ("median", pool[len(pool) // 2])):
                    chosen.append((i, score, f"{cell_type} {label}, {rank}"))
    return chosen


def plot_heat_maps(cells: list[ElpvCell], result: ElpvResult, path: Path) -> None:
    """Cells (top row of each pair) and their error heat maps (below) with the score, for :func:`showcase`."""
    chosen = showcase(cells, result)
    columns = 4
    rows = 2 * ((len(chosen) + columns - 1) // columns)
    figure = Figure(figsize=(2.6 * columns, 2.5 * rows))
    FigureCanvasAgg(figure)
    for n, (i, score, label) in enumerate(chosen):
        cell = cells[i]
        pair, column = divmod(n, columns)
        top = figure.add_subplot(rows, columns, 2 * pair * columns + column + 1)
        top.imshow(cell.pixels, cmap="gray", vmin=0, vmax=255)
        top.set_title(f"{cell.name} p={cell.defect_probability:.2f}\n{label}", fontsize=8)
        top.axis("off")
        heat = result.detector_of(cell).heat_map(result.frames[i])
        bottom = figure.add_subplot(rows, columns, (2 * pair + 1) * columns + column + 1)
        image = bottom.imshow(heat, cmap="inferno", vmin=0.0)
        bottom.set_title(f"score {score:.3g}", fontsize=8)
        bottom.axis("off")
        figure.colorbar(image, ax=bottom, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    figure.suptitle("elpv: test cells and their reconstruction-error heat maps (darker than expected)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1).

    >>> fpr, tpr = roc_points(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y = np.asarray(labels, dtype=bool)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    s, y = np.asarray(scores, dtype=float)[order], y[order]
    last = np.r_[np.diff(s) != 0, True]
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / max(1, int((~y).sum()))], np.r_[0.0, tp / max(1, int(y.sum()))]


def plot_roc(cells: list[ElpvCell], result: ElpvResult, path: Path) -> None:
    """ROC curves: defect probability > 0 as positive (all test cells, each type), and >= 0.5 (all)."""
    probability = np.array([cells[i].defect_probability for i in result.test])
    types = np.array([cells[i].cell_type for i in result.test])
    figure = Figure(figsize=(5.2, 5.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    everything = np.ones(len(types), dtype=bool)
    curves = (("all", everything, probability > 0), ("mono", types == "mono", probability > 0),
              ("poly", types == "poly", probability > 0), ("all, p >= 0.5", everything, probability >= 0.5))
    for name, mask, positive in curves:
        labels, scores = positive[mask], result.scores[mask]
        fpr, tpr = roc_points(labels, scores)
        area = roc_auc(labels, scores)
        axes.plot(fpr, tpr, lw=1.6 if name == "all" else 1.0,
                  label=f"{name} (AUROC {'n/a' if area is None else f'{area:.3f}'})")
    axes.plot([0, 1], [0, 1], color="k", lw=0.6, ls=":")
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.set_title("elpv: camera autoencoder on held-out cells")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
