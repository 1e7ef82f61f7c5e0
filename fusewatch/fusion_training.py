"""Learned fusion: a gate over the channels (:mod:`models.fusion.learned`), trained on a fleet's scored windows
and kept only where it beats Fisher on history it was not trained on.

The windows are those ``fusewatch evaluate --records`` and ``fusewatch sweep --records`` keep: each window's
calibrated channels, the early detector's shares and the log entries it brought. Each history (one records
file) comes with its labels (:class:`~fusewatch.evaluation.labels.Labels`): by default from its own log
(:func:`log_labels`: a window within ``[models] label_horizon_hours`` before a failure entry is positive, windows
between a failure and its repair are left out), or from a labels file; warm-up windows are left out. A history
is either trained on or held out, never both.

:func:`train_gate` fits the gate with class-balanced log loss (torch, full batch, Adam), then chooses the logit
that opens an alert: replaying the training histories' alerts, the one that finds the most faults for the
fewest false alarms (a false alarm costs two faults). :func:`held_out_rows` replays the held-out histories
through Fisher, noisy-or, hybrid and the new gate with the configured alert policy; :func:`beats_fisher` is the
rule that decides whether the gate goes into the bundle: at least as many faults found with no more false alarms
than Fisher, and better in one of the two or in the median lead.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fusewatch.config import FusewatchConfig
from fusewatch.evaluation.labels import Labels, LogLabels
from fusewatch.evaluation.methods import AlertReplay, WindowRecord, in_order, method_row, replay_methods
from models.fusion.learned import CHANNELS, GateParams, channel_decades, gate_inputs, one_hot, presence
from streams.fusion_stage import RepairClock

#: The rows the held-out comparison reports, the learned gate last.
COMPARED = ("fisher", "noisy_or", "hybrid", "learned")
EPOCHS = 300


History = tuple[Sequence[WindowRecord], Labels]
"""One history's windows and its labels."""


@dataclass(frozen=True)
class Examples:
    """One or more histories' windows as the gate's inputs, with their labels."""

    decades: np.ndarray  # (n, channels)
    present: np.ndarray  # (n, channels)
    kinds: np.ndarray  # (n, kinds) one-hot
    since_hours: np.ndarray  # (n,)
    labels: np.ndarray  # (n,) bool
    usable: np.ndarray  # (n,) bool: labelled and out of warm-up (the rows trained on)

    @property
    def inputs(self) -> np.ndarray:
        """The gate's input rows."""
        return gate_inputs(self.decades, self.present, self.kinds, self.since_hours)


def log_labels(records: Sequence[WindowRecord], horizon_ns: int) -> Labels:
    """The events the records' own log entries give: one per failure entry, from ``horizon_ns`` before it to
    the asset's next repair entry."""
    logs = LogLabels()
    for record in records:
        for ts, kind in record.logs:
            if kind == "failure":
                logs.failures.setdefault(record.asset_id, []).append(ts)
            elif kind == "repair":
                logs.repairs.setdefault(record.asset_id, []).append(ts)
    return Labels(logs.with_restarts(logs.events(horizon_ns)))


def examples(histories: Sequence[History], kinds: Sequence[str]) -> Examples:
    """Every window of ``histories`` as gate inputs (context as the fusion stage keeps it), and which of them are
    labelled and out of warm-up."""
    decades, present, onehot, since, labels, usable = [], [], [], [], [], []
    for records, history_labels in histories:
        clock = RepairClock()
        for record in in_order(records):
            hours = clock.hours(record.asset_id, record.end)
            clock.observe(record.asset_id, record.end, record.logs)
            label = history_labels.window_label(record.asset_id, record.end)
            usable.append(not record.warmup and label is not None)
            decades.append(channel_decades(record.x))
            present.append(presence(record.x))
            onehot.append(one_hot(record.kind, kinds))
            since.append(hours)
            labels.append(bool(label))
    if not decades:
        raise ValueError("no scored window to learn from")
    return Examples(np.array(decades), np.array(present), np.array(onehot).reshape(len(decades), len(kinds)),
                    np.array(since), np.array(labels, dtype=bool), np.array(usable, dtype=bool))


def train_gate(histories: Sequence[History], kinds: Sequence[str], config: FusewatchConfig, seed: int = 0,
               epochs: int = EPOCHS) -> GateParams:
    """Fit the gate to the histories' labelled windows, then anchor its logits on the surprise scale (module
    docstring of :mod:`models.fusion.learned`) with the open threshold where their alerts do best."""
    import torch
    from torch import nn

    data = examples(histories, kinds)
    mask = data.usable
    labels = data.labels[mask]
    positives = float(labels.mean()) if len(labels) else 0.0
    if not 0.0 < positives < 1.0:
        raise ValueError(f"need both failing and normal windows to learn from ({len(labels)} labelled windows, "
                         f"{positives:.1%} positive)")
    torch.manual_seed(seed)
    n = len(CHANNELS)
    gate = nn.Linear(data.inputs.shape[1], n).double()
    scale = nn.Parameter(torch.zeros(n, dtype=torch.float64))
    bias = nn.Parameter(torch.tensor(-3.0, dtype=torch.float64))
    inputs, decades, present = (torch.from_numpy(a).double() for a in (data.inputs, data.decades, data.present))

    def logits(rows: torch.Tensor | slice) -> torch.Tensor:
        trust = torch.softmax(gate(inputs[rows]).masked_fill(present[rows] == 0, -1e9), dim=1) * present[rows]
        return bias + (trust * decades[rows] * nn.functional.softplus(scale) * 4.0).sum(dim=1)

    rows = torch.from_numpy(np.flatnonzero(mask))
    target = torch.from_numpy(labels.astype(np.float64))
    weights = torch.where(target > 0, 0.5 / positives, 0.5 / (1.0 - positives))
    optimizer = torch.optim.Adam([*gate.parameters(), scale, bias], lr=0.03)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = (nn.functional.binary_cross_entropy_with_logits(logits(rows), target, reduction="none")
                * weights).mean()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    with torch.no_grad():
        every = logits(slice(None)).numpy()
    params = GateParams(
        tuple(kinds), gate.weight.detach().numpy().copy(), gate.bias.detach().numpy().copy(),
        (nn.functional.softplus(scale) * 4.0).detach().numpy().copy(), float(bias.item()),
        np.array([0.0, 1.0]), np.array([0.0, 1.0]),
        {"windows": int(mask.sum()), "positive_windows": int(labels.sum()), "epochs": epochs,
         "final_loss": round(float(loss.item()), 4)},
    )
    return choose_open_logit(params, histories, every, mask & ~data.labels, config)


def anchored(params: GateParams, normal: np.ndarray, open_logit: float, open_decades: float) -> GateParams:
    """``params`` with anchors from the normal windows' logits and the logit that opens an alert."""
    levels = np.array([0.5, 0.9, 0.99, 0.999])
    xs = list(np.quantile(normal, levels))
    ys = list(-np.log10(1.0 - levels))
    if open_logit > xs[-1]:
        xs.append(open_logit)
        ys.append(open_decades)
    xs = list(np.maximum.accumulate(np.array(xs) + 1e-9 * np.arange(len(xs))))
    return replace(params, anchor_logits=np.array(xs), anchor_decades=np.array(ys))


def choose_open_logit(params: GateParams, histories: Sequence[History], logits: np.ndarray, normal: np.ndarray,
                      config: FusewatchConfig) -> GateParams:
    """The anchored gate whose open threshold finds the most faults for the fewest false alarms on the training
    histories (``logits``: of every window, in event-time order per history; ``normal``: which are normal)."""
    open_decades = config.alerts.open_threshold * config.models.fusion_decades
    candidates = sorted({float(np.quantile(logits[normal], q)) for q in (0.999, 0.9995, 0.9999, 0.99995, 0.99999)}
                        | {float(logits[normal].max())})
    best: tuple[tuple[int, int], GateParams, dict[str, Any]] | None = None
    for rank, candidate in enumerate(candidates):
        trial = anchored(params, logits[normal], candidate, open_decades)
        fused = np.minimum(trial.decades(logits) / config.models.fusion_decades, 1.0).tolist()
        found = false_alarms = 0
        offset = 0
        for records, labels in histories:
            replay = AlertReplay(config.alerts, "learned")
            for record in in_order(records):
                replay.add(record, fused[offset])
                offset += 1
            row = method_row("learned", replay.series.scores, replay.series.opened, labels)
            found += row["faults_detected"]
            false_alarms += row["false_alarms"]
        key = (found - 2 * false_alarms, -rank)
        if best is None or key > best[0]:
            best = (key, trial, {"open_logit": round(candidate, 3), "training_found": found,
                                 "training_false_alarms": false_alarms})
    assert best is not None
    return replace(best[1], made_from={**params.made_from, **best[2]})


def held_out_rows(histories: Sequence[History], gate: GateParams, config: FusewatchConfig) -> list[dict[str, Any]]:
    """Each :data:`COMPARED` method's row over the held-out histories together."""
    totals: dict[str, dict[str, Any]] = {m: {"found": 0, "faults": 0, "false_alarms": 0, "leads": []}
                                         for m in COMPARED}
    for records, labels in histories:
        series, _ = replay_methods(records, config.models, config.alerts, methods=COMPARED, gate=gate)
        for method, data in series.items():
            row = method_row(method, data.scores, data.opened, labels)
            total = totals[method]
            total["found"] += row["faults_detected"]
            total["faults"] += row["faults"]
            total["false_alarms"] += row["false_alarms"]
            total["leads"] += [lead or 0.0 for lead in row["lead_times_hours"].values()]
    return [{"method": m, "found": t["found"], "faults": t["faults"], "false_alarms": t["false_alarms"],
             "lead_time_hours_median": round(statistics.median(t["leads"]), 1) if t["leads"] else None}
            for m, t in totals.items()]


def beats_fisher(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the learned row beats Fisher's: at least as many faults found with no more false alarms, and more
    found, fewer false alarms or a longer median lead.

    >>> fisher = {"method": "fisher", "found": 15, "false_alarms": 0, "lead_time_hours_median": 52.5}
    >>> beats_fisher([fisher, {"method": "learned", "found": 16, "false_alarms": 0, "lead_time_hours_median": 50}])
    True
    >>> beats_fisher([fisher, {"method": "learned", "found": 17, "false_alarms": 1, "lead_time_hours_median": 60}])
    False
    """
    by = {row["method"]: row for row in rows}
    learned, fisher = by["learned"], by["fisher"]
    if learned["found"] < fisher["found"] or learned["false_alarms"] > fisher["false_alarms"]:
        return False
    longer = (learned["lead_time_hours_median"] or 0.0) > (fisher["lead_time_hours_median"] or 0.0)
    return bool(learned["found"] > fisher["found"] or learned["false_alarms"] < fisher["false_alarms"] or longer)
