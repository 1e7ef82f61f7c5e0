"""Evaluation: scores and alerts measured against the truth, the same way for every command.

- :mod:`~fusewatch.evaluation.labels`: the fault events (the simulator's ground truth, the failure and repair
  entries of the maintenance logs, or a labels CSV file) and the label of each scored window;
- :mod:`~fusewatch.evaluation.outcomes`: detection, lead time and false alarms of the alerts per event and per
  asset (the demo summary's rows, the backtest's per-asset rows);
- :mod:`~fusewatch.evaluation.metrics`: ROC AUC and PR AUC;
- :mod:`~fusewatch.evaluation.methods`: the replay of scored windows through every fusion method and its alert
  policy, and one row per method.

``fusewatch demo`` (:mod:`fusewatch.demo`), ``fusewatch evaluate`` (:mod:`fusewatch.scenarios`, which keeps the
data-set specific workflows) and ``fusewatch backtest`` (:mod:`fusewatch.backtest`) all measure through it.
"""
