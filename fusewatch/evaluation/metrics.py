"""Evaluation metrics for anomaly scores: ROC AUC and PR AUC (average precision), without extra dependencies.

>>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.75
>>> round(pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
0.8333
>>> roc_auc([1, 1], [0.2, 0.3]) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def roc_auc(labels: Sequence[int | bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float | None:
    """Area under the ROC curve (ties count one half); ``None`` when one class is absent."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(s)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def pr_auc(labels: Sequence[int | bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float | None:
    """Average precision (the step-wise area under the precision–recall curve); ``None`` without positives.

    Tied scores are taken as one threshold, so the result does not depend on the order of equal scores.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        return None if positives == 0 else 1.0
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.diff(s_sorted) != 0, True]
    tp = np.cumsum(y_sorted)[last_of_tie]
    seen = np.arange(1, y.size + 1)[last_of_tie]
    precision = tp / seen
    recall = tp / positives
    previous_recall = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - previous_recall) * precision))
